package gateway_test

import (
	"testing"
)

// BenchmarkCheck is the cost of one decision per plan type, next to a
// flow no API covers (the baseline: one map lookup) in the same run.
// Plans here have a rate limit, so the counter is part of the cost.
func BenchmarkCheck(b *testing.B) {
	t := &testing.T{}
	w := newWorld(t)
	for i := range w.state.APIs[0].Plans {
		w.state.APIs[0].Plans[i].RateLimit.Requests = 1 << 62
	}
	w.state.APIs[0].Plans[0].ClientSecret = false
	if err := w.gw.Apply(w.state); err != nil {
		b.Fatal(err)
	}
	tok := w.token("shop-id", "app-shop")
	cases := []struct {
		name, flow string
		headers    []string
	}{
		{"none", "shop/health", nil},
		{"client-id", "shop/getOrder", []string{"X-IBM-Client-Id", "shop-id"}},
		{"client-id+secret", "shop/getOrder", []string{"X-IBM-Client-Id", "shop-id", "X-IBM-Client-Secret", shopSecret}},
		{"oauth", "shop/getOrder", []string{"Authorization", "Bearer " + tok}},
	}
	for _, c := range cases {
		r := req(c.headers...)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, ref := w.gw.Check(c.flow, r); ref != nil {
						b.Fatal(ref)
					}
				}
			})
		})
	}
}
