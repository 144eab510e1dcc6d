package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// progressLog records what a transfer reported.
type progressLog struct{ done, total []int64 }

func (p *progressLog) report(done, total int64) {
	p.done, p.total = append(p.done, done), append(p.total, total)
}

func (p *progressLog) last() (int64, int64) {
	if len(p.done) == 0 {
		return -2, -2
	}
	return p.done[len(p.done)-1], p.total[len(p.total)-1]
}

func TestTransfersAgainstServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Env: []string{"SLUICE_RUNTIME_BACKEND=none"}})
	c, err := New(srv.URL, Options{Credentials: Credentials{InstanceID: srv.Creds.InstanceID, ClientID: srv.Creds.ClientID,
		ClientSecret: NewSecret(srv.Creds.ClientSecret), APIKey: NewSecret(srv.Creds.APIKey)}})
	if err != nil {
		t.Fatal(err)
	}
	// A safety net against a hung stream, not a timed assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	barBytes, _, err := bar.Build(ctx, "../examples/hello", nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("upload with a refused token and a body that cannot rewind", func(t *testing.T) {
		good, err := c.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		c.tok.AccessToken = NewSecret(good.AccessToken.Reveal()[:len(good.AccessToken.Reveal())-4] + "AAAA")
		c.mu.Unlock()
		var p progressLog
		// MultiReader hides bytes.Reader's Seek: the retry works only
		// because the 401 came before the body was sent.
		f, err := c.PutBARFile(ctx, "hello", io.MultiReader(bytes.NewReader(barBytes)), int64(len(barBytes)), p.report)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(barBytes)
		if f.Name != "hello" || f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(barBytes)) || !strings.HasSuffix(f.URL, "/api/v1/bar-files/hello/content") {
			t.Errorf("PutBARFile = %+v", f)
		}
		if done, total := p.last(); done != int64(len(barBytes)) || total != int64(len(barBytes)) || p.done[0] != 0 {
			t.Errorf("progress %v of %v", p.done, p.total)
		}
	})

	t.Run("download", func(t *testing.T) {
		var buf bytes.Buffer
		var p progressLog
		n, err := c.DownloadBARFile(ctx, "hello", &buf, p.report)
		if err != nil || n != int64(len(barBytes)) || !bytes.Equal(buf.Bytes(), barBytes) {
			t.Fatalf("DownloadBARFile: %d bytes, %v", n, err)
		}
		if done, total := p.last(); done != n || total != n {
			t.Errorf("progress %v of %v", p.done, p.total)
		}
		if _, err := c.DownloadBARFile(ctx, "nosuch", io.Discard, nil); !IsNotFound(err) {
			t.Errorf("download of a missing BAR: %v", err)
		}
	})

	t.Run("configurations keep their data to themselves", func(t *testing.T) {
		data := []byte("orders-db app s3cr3t\n")
		cfg, err := c.CreateConfiguration(ctx, Configuration{Metadata: Metadata{Name: "db"}, Spec: ConfigurationSpec{Type: "setdbparms", Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Status.Size != int64(len(data)) || cfg.Spec.Data != nil || cfg.Metadata.CreatedAt.IsZero() {
			t.Errorf("CreateConfiguration = %+v", cfg)
		}
		cfg, err = c.PutConfiguration(ctx, Configuration{Metadata: Metadata{Name: "db"}, Spec: ConfigurationSpec{Type: "setdbparms", Description: "kept"}})
		if err != nil || cfg.Status.Size != int64(len(data)) || cfg.Spec.Description != "kept" {
			t.Errorf("PutConfiguration without data = %+v, %v", cfg, err)
		}
		if _, err := c.CreateConfiguration(ctx, Configuration{Metadata: Metadata{Name: "db"}, Spec: ConfigurationSpec{Type: "setdbparms", Data: data}}); StatusCode(err) != http.StatusConflict {
			t.Errorf("second create: %v", err)
		}
		types, err := c.ListConfigurationTypes(ctx)
		if err != nil || len(types) < 9 {
			t.Errorf("ListConfigurationTypes = %v, %v", types, err)
		}
	})

	t.Run("watch", func(t *testing.T) {
		w, err := c.WatchRuntimes(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		one := 1
		rt, err := c.CreateRuntime(ctx, IntegrationRuntime{Metadata: RuntimeMetadata{Name: "watched"},
			Spec: RuntimeSpec{BarURL: []string{srv.URL + "/api/v1/bar-files/hello/content"}, Configurations: []string{"db"}, Replicas: &one}})
		if err != nil {
			t.Fatal(err)
		}
		if rt.Metadata.Generation != 1 || rt.Status.Phase != PhasePending {
			t.Errorf("CreateRuntime = %+v", rt)
		}
		ev, err := w.Next()
		if err != nil || ev.Type != EventUpdate || ev.Runtime.Metadata.Name != "watched" || len(ev.Runtime.Spec.BarURL) != 1 {
			t.Fatalf("first event %+v, %v", ev, err)
		}
		if err := c.DeleteBARFile(ctx, "hello", false); StatusCode(err) != http.StatusConflict || !strings.Contains(err.Error(), "watched") {
			t.Errorf("delete of a BAR in use: %v", err)
		}
		if err := c.DeleteRuntime(ctx, "watched"); err != nil {
			t.Fatal(err)
		}
		for {
			ev, err = w.Next()
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type == EventDeleted {
				break
			}
		}
		if ev.Runtime.Metadata.Name != "watched" {
			t.Errorf("deleted event %+v", ev)
		}
		if _, err := c.WatchRuntimes(ctx, "nosuch"); !IsNotFound(err) {
			t.Errorf("watch of a missing runtime: %v", err)
		}
	})

	t.Run("traces without a backend", func(t *testing.T) {
		if _, err := c.ListTraces(ctx, ""); StatusCode(err) != http.StatusServiceUnavailable {
			t.Errorf("ListTraces: %v", err)
		}
	})
}

// fakeServer answers the token exchange and hands every other request to h.
func fakeServer(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/tokens" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"a.b.c","token_type":"bearer","expires_in":3600}`)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	c, err := New(s.URL, Options{Credentials: Credentials{InstanceID: "i", ClientID: "c", ClientSecret: NewSecret("s"), APIKey: NewSecret("k")}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDownloadIsChecked(t *testing.T) {
	content := []byte("the bytes of a BAR file")
	sum := sha256.Sum256(content)
	for _, tc := range []struct {
		name, etag string
		body       []byte
		length     int
		want       string
	}{
		{"intact", hex.EncodeToString(sum[:]), content, len(content), ""},
		{"changed on the way", hex.EncodeToString(sum[:]), []byte("the bytes of a BAR filE"), len(content), "do not match"},
		{"cut short", hex.EncodeToString(sum[:]), content[:10], len(content), "unexpected EOF"},
		{"no checksum", "", content, len(content), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
				if tc.etag != "" {
					w.Header().Set("ETag", `"`+tc.etag+`"`)
				}
				w.Header().Set("Content-Length", strconv.Itoa(tc.length))
				w.Write(tc.body)
			})
			var buf bytes.Buffer
			_, err := c.DownloadBARFile(context.Background(), "x", &buf, nil)
			if tc.want == "" {
				if err != nil || !bytes.Equal(buf.Bytes(), content) {
					t.Errorf("download: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("download: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestServerSentEvents(t *testing.T) {
	stream := ": keep-alive\n\n" +
		"event: update\nid: 7\ndata: {\"metadata\":\ndata: {\"name\":\"a\"}}\n\n" +
		"event: ping\n\n" +
		"event: deleted\ndata: {\"metadata\":{\"name\":\"a\"}}"
	r := newSSEReader(strings.NewReader(stream))
	ev, err := r.next()
	if err != nil || ev.event != "update" || ev.id != "7" || ev.data != "{\"metadata\":\n{\"name\":\"a\"}}" {
		t.Errorf("first event %+v, %v", ev, err)
	}
	ev, err = r.next()
	if err != nil || ev.event != "deleted" || ev.id != "" {
		t.Errorf("second event %+v, %v", ev, err)
	}
	if _, err := r.next(); err != io.EOF {
		t.Errorf("after the last event: %v, want io.EOF", err)
	}

	// RuntimeLogs turns followed logs back into lines.
	c := fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("follow") != "true" || r.URL.Query().Get("tail") != "2" {
			http.Error(w, `{"code":400,"reason":"BadRequest","message":"wrong query"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: line one\n\n: keep-alive\n\ndata: line two\n\n")
	})
	rc, err := c.RuntimeLogs(context.Background(), "rt", LogOptions{Tail: 2, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "line one\nline two\n" {
		t.Errorf("followed logs %q, %v", b, err)
	}
}
