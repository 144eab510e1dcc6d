package flow

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
)

// FuzzLoad feeds arbitrary flow definitions to the parser, next to the
// orders example's schemas and jq modules so references can resolve. Load
// must answer with a project or *LoadErrors, never panic (its recover
// would turn a panic into an "internal error", which fails the target),
// and a loaded flow must run without panicking.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"../../examples/hello/flows", "../../examples/orders/flows"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(dir + "/" + e.Name())
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(data))
		}
	}
	f.Add("flow: a\nsteps:\n  - switch:\n      - when: .a\n        steps: [{fail: x}]\n      - default: [{reply: {status: 201}}]\n")
	f.Add("flow: a\nsteps: [{for-each: {items: .body, steps: [{log: '${ .vars.item }'}]}}, {try: {steps: [{call: a2}], catch: []}}]\n")
	f.Add("flow: a\ntrigger: {schedule: {cron: '@every 1m'}}\nsteps: [{map: &x .a}, {map: *x}]\n")

	base := map[string]string{}
	for _, name := range []string{"schemas/order.json", "schemas/item.json", "jq/orders.jq", "static/currencies.json"} {
		data, err := os.ReadFile("../../examples/orders/" + name)
		if err != nil {
			f.Fatal(err)
		}
		base[name] = string(data)
	}
	base["flows/price-order.yaml"] = "flow: price-order\nsteps: [{map: .}]\n"
	base["flows/a2.yaml"] = "flow: a2\nsteps: [{map: .}]\n"
	cfg := &Config{
		Values:      map[string]any{"backendURL": "https://backend.example", "pricingURL": "https://pricing.example"},
		Credentials: map[string]Credential{"backend": {User: "u", Password: secret.New("pw-fuzz")}, "backend-token": {User: "t", Password: secret.New("tok-fuzz")}},
		Transport:   refuseTransport{},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sleep:       func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}

	f.Fuzz(func(t *testing.T, flowYAML string) {
		files := map[string]string{"flows/fuzz.yaml": flowYAML}
		for k, v := range base {
			files[k] = v
		}
		p, err := Load(context.Background(), project(files), cfg)
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Load panicked: %v\ninput:\n%s", err, flowYAML)
			}
			checkLoadErrors(t, err)
			return
		}
		for _, fl := range p.Flows {
			if fl.File != "flows/fuzz.yaml" {
				continue
			}
			// A short deadline stops programs that would spin.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
			_, _ = fl.Run(ctx, &Message{Body: map[string]any{"items": []any{map[string]any{"sku": "ABC-001", "qty": 1, "price": 1}}}}, discardTracer{})
			cancel()
		}
	})
}

// checkLoadErrors: every error of a failed Load is a *LoadError naming a file.
func checkLoadErrors(t *testing.T, err error) {
	t.Helper()
	errs := []error{err}
	var list interface{ Unwrap() []error }
	if errors.As(err, &list) {
		errs = list.Unwrap()
	}
	for _, e := range errs {
		var le *LoadError
		if !errors.As(e, &le) || le.File == "" {
			t.Fatalf("error without a file: %T %v", e, e)
		}
	}
}

type refuseTransport struct{}

func (refuseTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network disabled in fuzzing")
}

var _ fs.FS = project(nil)
