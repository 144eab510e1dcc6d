package flow

// Placeholder bodies so the contract compiles; the engine replaces this file.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

type program struct{}

func formatLoadError(e *LoadError) string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Load is not implemented yet.
func Load(ctx context.Context, fsys fs.FS, cfg *Config) (*Project, error) {
	return nil, errors.New("flow: engine not implemented")
}

// Run is not implemented yet.
func (f *Flow) Run(ctx context.Context, msg *Message, tr Tracer) (*Response, error) {
	return nil, errors.New("flow: engine not implemented")
}
