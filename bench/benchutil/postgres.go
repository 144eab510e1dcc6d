package benchutil

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

// FreshDatabase creates an empty database named prefix_<pid>_<n> next to
// the one admin names, so `sluice serve` bootstraps a new instance in it,
// and returns its URL and a function that drops it (reporting a failure
// through logf).
func FreshDatabase(ctx context.Context, admin, prefix string, logf func(string, ...any)) (string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("-postgres %q is not a URL: %w", admin, err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("cannot reach PostgreSQL at %s: %w", u.Redacted(), err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	fresh := *u
	fresh.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			logf("unable to drop database %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			logf("unable to drop database %s: %v", name, err)
		}
	}
	return fresh.String(), drop, nil
}
