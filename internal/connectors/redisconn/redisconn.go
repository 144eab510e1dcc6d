// Package redisconn runs the commands of redis steps through go-redis:
// one client (a connection pool) per policy, the documented subset of
// commands (flow.RedisCommands), each reply as a JSON value.
package redisconn

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-dev/sluice/internal/flow"
)

// maxItems bounds what LRANGE and HGETALL bring into a message.
const maxItems = 10_000

// Pool holds the clients of one runtime, one per policy.
type Pool struct {
	mu      sync.Mutex
	clients map[string]*redis.Client
	closed  bool
}

// NewPool returns an empty pool; clients are made on first use.
func NewPool() *Pool { return &Pool{clients: map[string]*redis.Client{}} }

// Close closes every client.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.clients {
		c.Close()
	}
	p.clients = map[string]*redis.Client{}
}

func (p *Pool) client(c *flow.Connection) (*redis.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("connections closed")
	}
	if cl := p.clients[c.Name]; cl != nil {
		return cl, nil
	}
	opts, err := redis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("policy %s: invalid redis url", c.Name)
	}
	if c.Credential != nil {
		opts.Username, opts.Password = c.Credential.User, c.Credential.Password.Reveal()
	}
	if opts.TLSConfig != nil { // rediss://
		opts.TLSConfig.RootCAs, opts.TLSConfig.MinVersion = c.RootCAs, tls.VersionTLS12
	}
	if v, ok := c.Options["maxConns"].(int); ok && v > 0 {
		opts.PoolSize = v
	}
	cl := redis.NewClient(opts)
	p.clients[c.Name] = cl
	return cl, nil
}

// Run executes one command.
func (p *Pool) Run(ctx context.Context, c *flow.Connection, cmd *flow.RedisCommand) (any, error) {
	cl, err := p.client(c)
	if err != nil {
		return nil, err
	}
	k := cmd.Key
	switch cmd.Command {
	case "GET":
		v, err := cl.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return text(v), err
	case "SET":
		return cl.Set(ctx, k, cmd.Value, cmd.TTL).Result()
	case "SETNX":
		return cl.SetNX(ctx, k, cmd.Value, cmd.TTL).Result()
	case "DEL":
		return cl.Del(ctx, k).Result()
	case "EXISTS":
		n, err := cl.Exists(ctx, k).Result()
		return n == 1, err
	case "INCR":
		return cl.Incr(ctx, k).Result()
	case "INCRBY":
		return cl.IncrBy(ctx, k, cmd.By).Result()
	case "EXPIRE":
		return cl.Expire(ctx, k, cmd.TTL).Result()
	case "TTL":
		d, err := cl.TTL(ctx, k).Result()
		if err != nil || d < 0 {
			return nil, err // no key, or no expiry
		}
		return int64(d.Seconds()), nil
	case "HSET":
		return cl.HSet(ctx, k, cmd.Field, cmd.Value).Result()
	case "HGET":
		v, err := cl.HGet(ctx, k, cmd.Field).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return text(v), err
	case "HDEL":
		return cl.HDel(ctx, k, cmd.Field).Result()
	case "HGETALL":
		m, err := cl.HGetAll(ctx, k).Result()
		if err != nil {
			return nil, err
		}
		if len(m) > maxItems {
			return nil, fmt.Errorf("hash has more than %d fields", maxItems)
		}
		out := make(map[string]any, len(m))
		for f, v := range m {
			out[f] = text(v)
		}
		return out, nil
	case "LPUSH":
		return cl.LPush(ctx, k, cmd.Value).Result()
	case "RPUSH":
		return cl.RPush(ctx, k, cmd.Value).Result()
	case "LRANGE":
		l, err := cl.LRange(ctx, k, 0, maxItems).Result()
		if err != nil {
			return nil, err
		}
		if len(l) > maxItems {
			return nil, fmt.Errorf("list has more than %d items", maxItems)
		}
		out := make([]any, len(l))
		for i, v := range l {
			out[i] = text(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported command %s", cmd.Command)
}

// text gives a stored value back as JSON when it holds JSON (what a
// step stored from an object), else as the string.
func text(v string) any {
	t := strings.TrimSpace(v)
	if t != "" && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
		dec := json.NewDecoder(strings.NewReader(t))
		dec.UseNumber()
		var out any
		if dec.Decode(&out) == nil {
			return out
		}
	}
	return v
}
