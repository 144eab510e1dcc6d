package exchange

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Exchange types: the commands of the exchange protocol and of Gravitee's
// integration API that a federation agent takes part in.
const (
	TypeHello       = "HELLO"
	TypeHealthCheck = "HEALTH_CHECK"
	TypePrimary     = "PRIMARY"
	TypeGoodBye     = "GOOD_BYE"
	TypeDiscover    = "DISCOVER"
	TypeStartIngest = "START_INGEST"
	TypeIngest      = "INGEST"
	TypeSubscribe   = "SUBSCRIBE"
	TypeUnsubscribe = "UNSUBSCRIBE"
	// TypeUnknown is what a command of any other type decodes as; its
	// reply is an UNKNOWN reply with status ERROR.
	TypeUnknown = "UNKNOWN"
)

// knownTypes are the exchange types this codec decodes.
var knownTypes = map[string]bool{
	TypeHello: true, TypeHealthCheck: true, TypePrimary: true, TypeGoodBye: true, TypeDiscover: true,
	TypeStartIngest: true, TypeIngest: true, TypeSubscribe: true, TypeUnsubscribe: true, TypeUnknown: true,
}

// Status is a reply's commandStatus.
type Status string

// Reply statuses.
const (
	StatusSucceeded  Status = "SUCCEEDED"
	StatusError      Status = "ERROR"
	StatusPending    Status = "PENDING"
	StatusInProgress Status = "IN_PROGRESS"
)

// Command is a command envelope. Payload is kept raw: its shape depends on
// Type, and the receiver decodes it with the payload type of that command.
type Command struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Reply is a reply envelope.
type Reply struct {
	CommandID     string          `json:"commandId"`
	Type          string          `json:"type"`
	CommandStatus Status          `json:"commandStatus"`
	ErrorDetails  string          `json:"errorDetails,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
}

// Message is a decoded frame: exactly one of Command and Reply is set.
// FrameType is the frame's exchange type as sent (it differs from
// Command.Type for an UNKNOWN command).
type Message struct {
	Command   *Command
	Reply     *Reply
	FrameType string
}

// NewCommand builds a command with payload encoded as JSON.
func NewCommand(id, typ string, payload any) (Command, error) {
	raw, err := marshalPayload(payload)
	if err != nil {
		return Command{}, fmt.Errorf("exchange: unable to encode the %s payload: %w", typ, err)
	}
	return Command{ID: id, Type: typ, Payload: raw}, nil
}

// Succeeded builds the SUCCEEDED reply to cmd with payload.
func Succeeded(cmd Command, payload any) (Reply, error) {
	raw, err := marshalPayload(payload)
	if err != nil {
		return Reply{}, fmt.Errorf("exchange: unable to encode the %s reply: %w", cmd.Type, err)
	}
	return Reply{CommandID: cmd.ID, Type: cmd.Type, CommandStatus: StatusSucceeded, Payload: raw}, nil
}

// Failed builds the ERROR reply to the command id of type typ.
func Failed(commandID, typ, details string) Reply {
	return Reply{CommandID: commandID, Type: typ, CommandStatus: StatusError, ErrorDetails: details}
}

func marshalPayload(payload any) (json.RawMessage, error) {
	if payload == nil {
		return json.RawMessage("{}"), nil
	}
	return json.Marshal(payload)
}

// EncodeCommand frames a command.
func EncodeCommand(c Command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("exchange: unable to encode the %s command: %w", c.Type, err)
	}
	return Frame{Kind: KindCommand, Type: c.Type, Body: body}.Encode(), nil
}

// EncodeReply frames a reply.
func EncodeReply(r Reply) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("exchange: unable to encode the %s reply: %w", r.Type, err)
	}
	return Frame{Kind: KindReply, Type: r.Type, Body: body}.Encode(), nil
}

// Decode decodes one frame of size bytes, of which b holds the first ones
// (all of them unless the frame was over limit), into a command or a
// reply. A command of a type this codec does not know decodes as an
// UNKNOWN command keeping its id, to be answered with an UNKNOWN error.
// Errors are *FrameError or *TooLargeError.
func Decode(b []byte, size, limit int) (Message, error) {
	f, err := DecodeFrame(b, size, limit)
	if err != nil {
		return Message{}, err
	}
	switch f.Kind {
	case KindCommand:
		var c Command
		if err := strictObject(f.Body, &c); err != nil {
			return Message{}, &FrameError{Kind: f.Kind, Type: f.Type, CommandID: idOf(f.Kind, f.Body),
				Reason: fmt.Sprintf("%s command does not decode: %v", truncate(f.Type), err)}
		}
		if !validID(c.ID) {
			return Message{}, &FrameError{Kind: f.Kind, Type: f.Type, Reason: fmt.Sprintf("%s command has no usable id", truncate(f.Type))}
		}
		if !knownTypes[f.Type] {
			// Gravitee's reader picks the command class by the frame's
			// exchange type; an unknown one becomes UNKNOWN. Its payload
			// means nothing to this agent and is dropped.
			c.Type = TypeUnknown
			c.Payload = nil
			return Message{Command: &c, FrameType: f.Type}, nil
		}
		if c.Type != "" && c.Type != f.Type {
			return Message{}, &FrameError{Kind: f.Kind, Type: f.Type, CommandID: c.ID,
				Reason: fmt.Sprintf("command type %q does not match the frame's exchange type %q", truncate(c.Type), f.Type)}
		}
		c.Type = f.Type
		if len(c.Payload) > 0 && !isObjectOrNull(c.Payload) {
			return Message{}, &FrameError{Kind: f.Kind, Type: f.Type, CommandID: c.ID,
				Reason: fmt.Sprintf("%s command payload is not a JSON object", f.Type)}
		}
		return Message{Command: &c, FrameType: f.Type}, nil
	default: // KindReply: DecodeFrame admits nothing else
		var r Reply
		if err := strictObject(f.Body, &r); err != nil {
			return Message{}, &FrameError{Kind: f.Kind, Type: f.Type, Reason: fmt.Sprintf("%s reply does not decode: %v", truncate(f.Type), err)}
		}
		if r.CommandID == "" {
			return Message{}, &FrameError{Kind: f.Kind, Type: f.Type, Reason: fmt.Sprintf("%s reply has no commandId", truncate(f.Type))}
		}
		switch r.CommandStatus {
		case StatusSucceeded, StatusError, StatusPending, StatusInProgress:
		default:
			return Message{}, &FrameError{Kind: f.Kind, Type: f.Type,
				Reason: fmt.Sprintf("%s reply has commandStatus %q: want SUCCEEDED, ERROR, PENDING or IN_PROGRESS", truncate(f.Type), truncate(string(r.CommandStatus)))}
		}
		if r.Type == "" {
			r.Type = f.Type
		}
		return Message{Reply: &r, FrameType: f.Type}, nil
	}
}

// strictObject decodes one JSON object and nothing after it. Unknown
// members are ignored, as Gravitee's Jackson mapper ignores them.
func strictObject(b []byte, v any) error {
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return fmt.Errorf("the exchange is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the JSON object")
	}
	return nil
}

func isObjectOrNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return bytes.HasPrefix(t, []byte("{")) || bytes.Equal(t, []byte("null"))
}

// DecodePayload decodes a command's or reply's payload into v. An absent
// or null payload leaves v as it is (every payload field is optional on
// the wire).
func DecodePayload(raw json.RawMessage, v any) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil
	}
	if err := strictObject(t, v); err != nil {
		return fmt.Errorf("payload does not decode: %w", err)
	}
	return nil
}

// Known reports whether typ is an exchange type this codec decodes.
func Known(typ string) bool { return knownTypes[typ] }
