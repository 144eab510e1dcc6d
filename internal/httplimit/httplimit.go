// Package httplimit owns the time limits of Sluice's HTTP servers (control
// plane, runtime flows, runtime admin) and the way a streaming response
// lives with them.
//
// Every server bounds reading the headers, reading the whole request,
// writing the answer and keeping an idle connection, so a client that
// trickles bytes (slow loris) or never reads its answer cannot hold a
// connection and its goroutine forever. A streaming response (watch, log
// follow, server-sent events) outlives those limits on purpose: it opens
// with NewStream and gives every write a deadline of its own.
//
// It knows nothing of what the servers serve.
package httplimit

import (
	"net/http"
	"time"
)

// Timeouts are the limits of one HTTP server. A zero field means no limit,
// which no Sluice server uses.
type Timeouts struct {
	ReadHeader time.Duration // request line and headers
	Read       time.Duration // the whole request, body included
	Write      time.Duration // from the end of the headers to the end of the answer
	Idle       time.Duration // a keep-alive connection between requests
}

// ControlPlane are the control plane's defaults: a BAR upload (100 MiB by
// default) over a slow link needs minutes, a bundle or trace download
// likewise; anything slower is an attack or a dead peer.
var ControlPlane = Timeouts{ReadHeader: 10 * time.Second, Read: 5 * time.Minute, Write: 5 * time.Minute, Idle: 2 * time.Minute}

// StreamWrite is how long one write (and flush) of a stream may take.
const StreamWrite = 30 * time.Second

// Apply sets t on srv.
func (t Timeouts) Apply(srv *http.Server) *http.Server {
	srv.ReadHeaderTimeout = t.ReadHeader
	srv.ReadTimeout = t.Read
	srv.WriteTimeout = t.Write
	srv.IdleTimeout = t.Idle
	return srv
}

// A Stream is a response that stays open longer than the server's limits.
type Stream struct {
	rc *http.ResponseController
}

// NewStream prepares w for streaming: the server's write limit counts
// from the request's start and would end the stream at its first write
// after it, so each write gets StreamWrite from now instead.
func NewStream(w http.ResponseWriter) *Stream {
	s := &Stream{rc: http.NewResponseController(w)}
	s.Extend()
	return s
}

// Extend gives the next write StreamWrite to complete; call it before
// each write.
func (s *Stream) Extend() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(StreamWrite))
}

// Flush sends what was written, within a fresh write deadline.
func (s *Stream) Flush() error {
	s.Extend()
	return s.rc.Flush()
}
