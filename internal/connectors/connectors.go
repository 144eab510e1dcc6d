// Package connectors holds what the protocol connectors (natsconn,
// sqlconn, …) share with the runtime that drives them: the handler a
// message-source trigger calls for each message, the counters it reports
// deliveries to, and how a payload becomes a flow's .body. It owns no
// connection and speaks no protocol; each protocol is its own package.
package connectors

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/jqjson"
)

// Handler runs the trigger's flow on one message. A nil error means the
// flow succeeded and the message may be acknowledged; any error is a
// failed attempt (the trigger retries or dead-letters).
type Handler func(ctx context.Context, msg *flow.Message) (*flow.Response, error)

// Counters receives a trigger's delivery events; the runtime turns them
// into metrics. Every method must be safe for concurrent use.
type Counters interface {
	Received()     // a message arrived (redeliveries count again)
	Acked()        // its flow succeeded and the source was told so
	Retried()      // an attempt failed and another one is due
	DeadLettered() // the last attempt failed: sent to the dead-letter destination (or dropped when none)
	InFlight(delta int)
}

// Body turns a payload into a flow's .body: JSON when it parses as JSON,
// else text when it is UTF-8, else base64 text (encoding "base64").
// JSON numbers are int, float64 or (beyond int) *big.Int, as in HTTP
// bodies.
func Body(data []byte) (body any, encoding string) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, ""
	}
	// The same single-pass decoder as HTTP bodies: numbers arrive as the
	// int and float64 jq computes with (no json.Number to parse again at
	// every operation), integers beyond int exact.
	if v, err := jqjson.Decode(trimmed); err == nil {
		return v, "json"
	}
	if utf8.Valid(data) {
		return string(data), "text"
	}
	return base64.StdEncoding.EncodeToString(data), "base64"
}

// LagCounter is what Counters may also be for sources that tell how many
// messages wait behind the ones delivered (JetStream pending, Kafka's
// high watermark past the committed offsets).
type LagCounter interface {
	Lag(n int64)
}

// ReportLag tells cnt the trigger's lag when it keeps one.
func ReportLag(cnt Counters, n int64) {
	if l, ok := cnt.(LagCounter); ok {
		l.Lag(n)
	}
}

// NopCounters counts nothing.
type NopCounters struct{}

func (NopCounters) Received()     {}
func (NopCounters) Acked()        {}
func (NopCounters) Retried()      {}
func (NopCounters) DeadLettered() {}
func (NopCounters) InFlight(int)  {}

// DeadLetterError is a failed run's error as a dead-letter header
// carries it: one line, at most 1 KiB.
func DeadLetterError(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if len(msg) > 1024 {
		msg = msg[:1024] + "…"
	}
	return msg
}
