package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL runs on the same machine as the servers, unpinned: what it
// spends per request is CPU the control plane's database costs the
// machine, apart from the control plane's own. pgSample reads it from
// /proc: the backends serving the bench's database (their command line
// names it) and PostgreSQL's own processes (postmaster, WAL writer,
// checkpointer, background writer, autovacuum), which also serve the
// other databases on the server — that part is an upper bound.
type pgSample struct {
	backends map[int]time.Duration // pid -> CPU, backends of the bench database
	aux      map[int]time.Duration // pid -> CPU, PostgreSQL's own processes
	xacts    int64                 // transactions the bench database committed (-1: unknown)
}

// pgCPU is what PostgreSQL spent between two samples: backends gone in
// between are missed (the postmaster's children's time is not read, as it
// mixes in other databases' backends), new ones count from zero.
type pgCPU struct {
	backends, aux time.Duration
	connections   int // backends that appeared in between: connection churn
	// xacts is how many transactions the bench database committed in
	// between (-1: unknown): every statement outside a transaction is
	// one, so per request it counts the round trips that wrote or read,
	// the grant barrier's SELECTs included. PostgreSQL's statistics lag
	// by up to a second (a busy backend flushes them at most once a
	// second), so over a 5 s run it is good to ±20 %.
	xacts int64
}

func samplePostgres(stats *pgx.Conn, db string) pgSample {
	s := pgSample{backends: map[int]time.Duration{}, aux: map[int]time.Duration{}, xacts: -1}
	if db == "" {
		return s
	}
	if stats != nil {
		// A transaction of its own each time: statistics read are
		// cached until the reading transaction ends.
		if err := stats.QueryRow(context.Background(), `SELECT xact_commit FROM pg_stat_database WHERE datname = $1`, db).Scan(&s.xacts); err != nil {
			s.xacts = -1
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(cmd, "postgres: ") && strings.Contains(cmd, " "+db+" "):
			if t, err := cpuTime(pid); err == nil {
				s.backends[pid] = t
			}
		case strings.HasPrefix(cmd, "postgres: ") && isPostgresAux(cmd),
			strings.Contains(cmd, "/bin/postgres ") && strings.Contains(cmd, " -D "):
			if t, err := cpuTime(pid); err == nil {
				s.aux[pid] = t
			}
		}
	}
	return s
}

func isPostgresAux(cmd string) bool {
	for _, n := range []string{"walwriter", "checkpointer", "background writer", "autovacuum", "wal writer"} {
		if strings.Contains(cmd, n) {
			return true
		}
	}
	return false
}

func (after pgSample) since(before pgSample) pgCPU {
	c := pgCPU{xacts: -1}
	if after.xacts >= 0 && before.xacts >= 0 {
		c.xacts = after.xacts - before.xacts
	}
	for pid, t := range after.backends {
		if b, ok := before.backends[pid]; ok {
			c.backends += t - b
		} else {
			c.backends += t
			c.connections++
		}
	}
	for pid, t := range after.aux {
		c.aux += t - before.aux[pid]
	}
	return c
}

// pgDatabase is the database name of a postgres:// URL.
func pgDatabase(dsn string) string {
	rest := dsn[strings.Index(dsn, "://")+3:]
	_, path, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	path, _, _ = strings.Cut(path, "?")
	return path
}

func (c pgCPU) String() string {
	return fmt.Sprintf("%v backends + %v own processes, %d new connections", c.backends, c.aux, c.connections)
}
