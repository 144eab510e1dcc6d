package exchange

import (
	"errors"
	"testing"
)

// FuzzDecode holds the decoder to what the agent relies on for controller
// input: it never panics, every refusal is a *FrameError (or
// *TooLargeError) with a reason, a decoded message is exactly a command
// or a reply, and a decoded message re-encodes to a frame that decodes to
// the same envelope. Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`t:COMMAND;;et:HELLO;;e:{"id":"u1","type":"HELLO","payload":{"targetId":"i","provider":"p"}}`,
		`t:REPLY;;et:HELLO;;e:{"commandId":"u1","type":"HELLO","commandStatus":"SUCCEEDED","payload":{"targetId":"i"}}`,
		`t:COMMAND;;et:START_INGEST;;e:{"id":"s","type":"START_INGEST","payload":{"ingestJobId":"j","apiIds":["a"]}}`,
		`t:COMMAND;;et:NOPE;;e:{"id":"n"}`,
		`t:COMMAND;;e:`,
		`;;;;`,
	} {
		f.Add([]byte(s), 0)
	}
	f.Fuzz(func(t *testing.T, b []byte, extra int) {
		const limit = 4096
		size := len(b)
		if extra > 0 && extra < 1<<20 {
			size += extra // a frame whose tail was discarded
		}
		m, err := Decode(b, size, limit)
		if err != nil {
			var fe *FrameError
			var tl *TooLargeError
			if !errors.As(err, &fe) && !errors.As(err, &tl) {
				t.Fatalf("error %T %v is not a frame error", err, err)
			}
			if err.Error() == "exchange: " {
				t.Fatal("refusal without a reason")
			}
			return
		}
		if size > limit {
			t.Fatalf("frame of %d bytes over the limit decoded", size)
		}
		if (m.Command == nil) == (m.Reply == nil) {
			t.Fatalf("decoded %+v: want exactly one of command and reply", m)
		}
		var again []byte
		if m.Command != nil {
			again, err = EncodeCommand(*m.Command)
		} else {
			again, err = EncodeReply(*m.Reply)
		}
		if err != nil {
			t.Fatalf("re-encoding a decoded message: %v", err)
		}
		m2, err := Decode(again, len(again), len(again)+1)
		if err != nil {
			// An UNKNOWN command re-encodes with its original type lost;
			// it must still decode.
			t.Fatalf("re-encoded %q does not decode: %v", again, err)
		}
		if m.Command != nil && (m2.Command == nil || m2.Command.ID != m.Command.ID || m2.Command.Type != m.Command.Type) {
			t.Fatalf("command changed on a round trip: %+v → %+v", m.Command, m2.Command)
		}
		if m.Reply != nil && (m2.Reply == nil || m2.Reply.CommandID != m.Reply.CommandID || m2.Reply.CommandStatus != m.Reply.CommandStatus) {
			t.Fatalf("reply changed on a round trip: %+v → %+v", m.Reply, m2.Reply)
		}
	})
}
