package exchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The frames below are written from the public description of Gravitee's
// exchange protocol v1 (t:KIND;;et:TYPE;;e:JSON, Jackson envelopes).

func TestDecodeHelloReplyFromController(t *testing.T) {
	in := `t:REPLY;;et:HELLO;;e:{"commandId":"u1","type":"HELLO","commandStatus":"SUCCEEDED","payload":{"targetId":"int-1"}}`
	m, err := Decode([]byte(in), len(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Command != nil || m.Reply == nil {
		t.Fatalf("decoded %+v, want a reply", m)
	}
	if m.Reply.CommandID != "u1" || m.Reply.Type != TypeHello || m.Reply.CommandStatus != StatusSucceeded {
		t.Fatalf("reply %+v", m.Reply)
	}
	var p HelloReplyPayload
	if err := DecodePayload(m.Reply.Payload, &p); err != nil || p.TargetID != "int-1" {
		t.Fatalf("payload %+v, %v", p, err)
	}
}

func TestEncodeCommandRoundTrips(t *testing.T) {
	c, err := NewCommand("u1", TypeHello, HelloPayload{TargetID: "int-1", Provider: "ibm-api-connect"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `t:COMMAND;;et:HELLO;;e:{"id":"u1","type":"HELLO","payload":{"targetId":"int-1","provider":"ibm-api-connect"}}`
	if string(b) != want {
		t.Fatalf("frame\n %s\nwant\n %s", b, want)
	}
	m, err := Decode(b, len(b), 0)
	if err != nil || m.Command == nil || m.Command.ID != "u1" || m.Command.Type != TypeHello {
		t.Fatalf("decoded %+v, %v", m, err)
	}
}

func TestSeparatorInsideJSONIsKept(t *testing.T) {
	r, err := Succeeded(Command{ID: "c;;1", Type: TypeHealthCheck}, HealthCheckReplyPayload{Healthy: true, Detail: "a;;b;;et:X"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeReply(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b, len(b), 0)
	if err != nil {
		t.Fatal(err)
	}
	var p HealthCheckReplyPayload
	if err := DecodePayload(m.Reply.Payload, &p); err != nil || p.Detail != "a;;b;;et:X" || m.Reply.CommandID != "c;;1" {
		t.Fatalf("reply %+v payload %+v err %v", m.Reply, p, err)
	}
}

func TestFieldsInAnyOrderAndExtraFieldsIgnored(t *testing.T) {
	in := `x:future;;et:PRIMARY;;t:COMMAND;;e:{"id":"p1","type":"PRIMARY","payload":{"primary":true},"extra":1}`
	m, err := Decode([]byte(in), len(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	var p PrimaryPayload
	if err := DecodePayload(m.Command.Payload, &p); err != nil || !p.Primary {
		t.Fatalf("payload %+v %v", p, err)
	}
}

func TestUnknownCommandKeepsItsID(t *testing.T) {
	in := `t:COMMAND;;et:FETCH_EVERYTHING;;e:{"id":"z9","type":"FETCH_EVERYTHING","payload":{}}`
	m, err := Decode([]byte(in), len(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Command.Type != TypeUnknown || m.Command.ID != "z9" {
		t.Fatalf("command %+v, want UNKNOWN z9", m.Command)
	}
}

func TestMalformedFramesAreRefusedWithAReason(t *testing.T) {
	cases := []struct {
		name, in  string
		reason    string
		kind      Kind
		commandID string
	}{
		{"empty", "", "empty frame", "", ""},
		{"no kind", `et:HELLO;;e:{}`, "no kind", "", ""},
		{"bad kind", `t:EVENT;;et:HELLO;;e:{}`, `"EVENT" is neither`, "", ""},
		{"no type", `t:COMMAND;;e:{"id":"a1"}`, "no exchange type", KindCommand, "a1"},
		{"no exchange", `t:COMMAND;;et:HELLO`, "no exchange", KindCommand, ""},
		{"not json", `t:COMMAND;;et:DISCOVER;;e:{"id":"d1", nope`, "DISCOVER command does not decode", KindCommand, "d1"},
		{"array", `t:COMMAND;;et:DISCOVER;;e:[1]`, "not a JSON object", KindCommand, ""},
		{"no id", `t:COMMAND;;et:DISCOVER;;e:{"type":"DISCOVER"}`, "no usable id", KindCommand, ""},
		{"type mismatch", `t:COMMAND;;et:DISCOVER;;e:{"id":"m1","type":"SUBSCRIBE"}`, "does not match", KindCommand, "m1"},
		{"payload not object", `t:COMMAND;;et:SUBSCRIBE;;e:{"id":"s1","type":"SUBSCRIBE","payload":"x"}`, "payload is not a JSON object", KindCommand, "s1"},
		{"trailing data", `t:COMMAND;;et:DISCOVER;;e:{"id":"t1"} {"id":"t2"}`, "data after", KindCommand, "t1"},
		{"reply without id", `t:REPLY;;et:INGEST;;e:{"type":"INGEST","commandStatus":"SUCCEEDED"}`, "no commandId", KindReply, ""},
		{"reply bad status", `t:REPLY;;et:INGEST;;e:{"commandId":"i1","commandStatus":"FINE"}`, `commandStatus "FINE"`, KindReply, ""},
		{"invalid utf8", "t:COMMAND;;et:HELLO;;e:{\"id\":\"\xff\"}", "UTF-8", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.in), len(c.in), 0)
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v (%T), want *FrameError", err, err)
			}
			if !strings.Contains(fe.Reason, c.reason) {
				t.Fatalf("reason %q, want it to contain %q", fe.Reason, c.reason)
			}
			if fe.Kind != c.kind || fe.CommandID != c.commandID {
				t.Fatalf("kind %q id %q, want %q %q", fe.Kind, fe.CommandID, c.kind, c.commandID)
			}
		})
	}
}

func TestOversizedFrameNamesTheCommand(t *testing.T) {
	big := `t:COMMAND;;et:SUBSCRIBE;;e:{"id":"big1","type":"SUBSCRIBE","payload":{"apiId":"` + strings.Repeat("a", 5000) + `"}}`
	// The receiver kept only the first 100 bytes and counted the rest.
	_, err := Decode([]byte(big[:100]), len(big), 100)
	var tl *TooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("err %v, want *TooLargeError", err)
	}
	if tl.Size != len(big) || tl.Limit != 100 || tl.CommandID != "big1" || tl.Type != TypeSubscribe || tl.Kind != KindCommand {
		t.Fatalf("%+v", tl)
	}
	if !strings.Contains(tl.Error(), "over the limit of 100 bytes") {
		t.Fatal(tl.Error())
	}
	// Also when the caller hands all of it.
	_, err = Decode([]byte(big), len(big), 100)
	if !errors.As(err, &tl) || tl.CommandID != "big1" {
		t.Fatalf("err %v", err)
	}
}

func TestOversizedFrameWithoutReadableIDHasNone(t *testing.T) {
	big := `t:COMMAND;;et:SUBSCRIBE;;e:{"payload":{"apiId":"` + strings.Repeat("a", 500) + `"},"id":"late"}`
	_, err := Decode([]byte(big), len(big), 64)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.CommandID != "" {
		t.Fatalf("err %v, want no id (it comes after the limit)", err)
	}
}

func TestPayloadShapesMatchTheProtocol(t *testing.T) {
	p := IngestPayload{IngestJobID: "j1", Done: true, APIs: []API{{UniqueID: "u", ID: "i", Name: "n", Type: APITypeProxy,
		Pages: []Page{{PageType: PageSwagger, Content: "{}", Filename: "openapi.json"}},
		Plans: []Plan{{ID: "p", Name: "p", PlanSecurityType: PlanAPIKey}}}}}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ingestJobId":"j1","apis":[{"uniqueId":"u","id":"i","name":"n","type":"PROXY","pages":[{"pageType":"SWAGGER","content":"{}","filename":"openapi.json"}],"plans":[{"id":"p","name":"p","planSecurityType":"API_KEY"}]}],"done":true}`
	if string(b) != want {
		t.Fatalf("\n%s\nwant\n%s", b, want)
	}
	var s SubscribePayload
	in := `{"apiId":"a","subscription":{"graviteeSubscriptionId":"gs","graviteeApplicationId":"ga","graviteeApplicationName":"App","type":"API_KEY","metadata":{"planId":"p1"}}}`
	if err := DecodePayload(json.RawMessage(in), &s); err != nil {
		t.Fatal(err)
	}
	if s.APIID != "a" || s.Subscription.Type != SubscriptionAPIKey || s.Subscription.Metadata[MetadataPlanID] != "p1" || s.Subscription.GraviteeApplicationName != "App" {
		t.Fatalf("%+v", s)
	}
}

func TestFailedReplyShape(t *testing.T) {
	b, err := EncodeReply(Failed("x1", TypeUnknown, "unknown command"))
	if err != nil {
		t.Fatal(err)
	}
	want := `t:REPLY;;et:UNKNOWN;;e:{"commandId":"x1","type":"UNKNOWN","commandStatus":"ERROR","errorDetails":"unknown command"}`
	if !bytes.Equal(b, []byte(want)) {
		t.Fatalf("%s", b)
	}
}
