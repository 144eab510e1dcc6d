package redisconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
)

// These tests run against the machine's Redis (SLUICE_TEST_REDIS,
// default redis://127.0.0.1:6379/0), on keys of their own.

func conn() *flow.Connection {
	u := os.Getenv("SLUICE_TEST_REDIS")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	return &flow.Connection{Name: "cache", Type: "redis", URL: u, Options: map[string]any{}}
}

func TestCommandsOnRealRedis(t *testing.T) {
	b := make([]byte, 4)
	rand.Read(b)
	k := "sluice:test:" + hex.EncodeToString(b)
	p := NewPool()
	defer p.Close()
	ctx := context.Background()
	c := conn()
	defer p.Run(ctx, c, &flow.RedisCommand{Command: "DEL", Key: k})
	defer p.Run(ctx, c, &flow.RedisCommand{Command: "DEL", Key: k + ":h"})
	defer p.Run(ctx, c, &flow.RedisCommand{Command: "DEL", Key: k + ":l"})
	defer p.Run(ctx, c, &flow.RedisCommand{Command: "DEL", Key: k + ":n"})
	steps := []struct {
		cmd  flow.RedisCommand
		want string
	}{
		{flow.RedisCommand{Command: "GET", Key: k}, `null`},
		{flow.RedisCommand{Command: "SET", Key: k, Value: `{"id":"o-1","n":2}`, TTL: time.Hour}, `"OK"`},
		{flow.RedisCommand{Command: "GET", Key: k}, `{"id":"o-1","n":2}`},
		{flow.RedisCommand{Command: "SETNX", Key: k, Value: "again"}, `false`},
		{flow.RedisCommand{Command: "EXISTS", Key: k}, `true`},
		{flow.RedisCommand{Command: "TTL", Key: k}, `3600`},
		{flow.RedisCommand{Command: "INCR", Key: k + ":n"}, `1`},
		{flow.RedisCommand{Command: "INCRBY", Key: k + ":n", By: 41}, `42`},
		{flow.RedisCommand{Command: "EXPIRE", Key: k + ":n", TTL: time.Minute}, `true`},
		{flow.RedisCommand{Command: "HSET", Key: k + ":h", Field: "a", Value: "x"}, `1`},
		{flow.RedisCommand{Command: "HGET", Key: k + ":h", Field: "a"}, `"x"`},
		{flow.RedisCommand{Command: "HGETALL", Key: k + ":h"}, `{"a":"x"}`},
		{flow.RedisCommand{Command: "HDEL", Key: k + ":h", Field: "a"}, `1`},
		{flow.RedisCommand{Command: "RPUSH", Key: k + ":l", Value: "1"}, `1`},
		{flow.RedisCommand{Command: "LPUSH", Key: k + ":l", Value: "0"}, `2`},
		{flow.RedisCommand{Command: "LRANGE", Key: k + ":l"}, `["0","1"]`},
		{flow.RedisCommand{Command: "DEL", Key: k}, `1`},
		{flow.RedisCommand{Command: "TTL", Key: k}, `null`},
	}
	for _, s := range steps {
		got, err := p.Run(ctx, c, &s.cmd)
		if err != nil {
			t.Fatalf("%s %s: %v", s.cmd.Command, s.cmd.Key, err)
		}
		b, _ := json.Marshal(got)
		if string(b) != s.want {
			t.Errorf("%s: got %s, want %s", s.cmd.Command, b, s.want)
		}
	}
}
