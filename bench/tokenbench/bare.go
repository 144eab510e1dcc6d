package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sluice-dev/sluice/internal/iam"
)

// serveBare is the baseline: net/http with nothing but the work a token
// endpoint cannot avoid — read the JSON body, check the three headers are
// there, sign the same claims with the same algorithm and JOSE header as
// Sluice (EdDSA, typ at+jwt, kid), and answer the same JSON. No store, no
// credential check, no audit, no rate limit, no access log: the ratio to
// it is the price of all of those.
func serveBare(addr string) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), "bench0000000001")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, opts)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			APIKey string `json:"apiKey"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || body.APIKey == "" ||
			r.Header.Get("X-IBM-Client-Id") == "" || r.Header.Get("X-IBM-Client-Secret") == "" || r.Header.Get("X-IBM-Instance-Id") == "" {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		now := time.Now().Unix()
		c := iam.Claims{Issuer: "http://127.0.0.1:8080", Subject: "usr-0123456789abcdef", Audience: "sluice",
			ClientID: r.Header.Get("X-IBM-Client-Id"), IssuedAt: now, Expiry: now + 43200, ID: randomHex(16),
			Scope: "appcon:manage", InstanceID: r.Header.Get("X-IBM-Instance-Id"), Role: "admin", KeyID: "ak-0123456789abcdef"}
		payload, err := json.Marshal(c)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		obj, err := signer.Sign(payload)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		raw, err := obj.CompactSerialize()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var buf bytes.Buffer
		_ = json.NewEncoder(&buf).Encode(iam.TokenResponse{AccessToken: raw, TokenType: "bearer", Scope: c.Scope, ExpiresIn: c.Expiry - c.IssuedAt})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	})
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("hello\n"))
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		_ = srv.Close()
	}()
	fmt.Println("bare: serving", addr)
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
