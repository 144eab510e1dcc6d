package store

import "sync"

// queryCache caches rebound query text, so the placeholder rewrite runs once
// per query rather than once per call.
type queryCache struct{ m sync.Map }

func (c *queryCache) get(q string, rebind func(string) string) string {
	if v, ok := c.m.Load(q); ok {
		return v.(string)
	}
	r := rebind(q)
	c.m.Store(q, r)
	return r
}
