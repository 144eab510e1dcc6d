package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
}

// pgCPU is what PostgreSQL spent between two samples: backends gone in
// between are missed (the postmaster's children's time is not read, as it
// mixes in other databases' backends), new ones count from zero.
type pgCPU struct {
	backends, aux time.Duration
	connections   int // backends that appeared in between: connection churn
}

func samplePostgres(db string) pgSample {
	s := pgSample{backends: map[int]time.Duration{}, aux: map[int]time.Duration{}}
	if db == "" {
		return s
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
	var c pgCPU
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
