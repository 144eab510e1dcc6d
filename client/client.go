// Package client is the public Go client of the Sluice API. A Client holds
// the four credentials of App Connect's public API (instance id, client
// id, client secret, API key), exchanges them for an access token at
// POST /api/v1/tokens, keeps the token, renews it shortly before it
// expires and once when the server refuses it (a locked or rotated key, a
// revoked token), and offers a typed method per endpoint: the identity API
// (users, service IDs, API keys, public API credentials, audit, whoami),
// configurations, BAR files (streamed upload and download with progress),
// integration runtimes (with watch and logs) and traces.
//
// The types mirror the JSON the server sends ({metadata, spec, status}).
// Secret values (client secrets, API keys, passwords, access tokens) are
// held as Secret, which prints, logs and marshals as a redaction; Reveal
// returns the clear text where it is needed. Errors answered by the server
// are *Error values carrying its status, reason, message and request id.
//
// The package depends on nothing in Sluice's internal packages, so other
// programs can import it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Credentials are what App Connect's token exchange asks for. The client
// id identifies the instance's public API credential and is also sent on
// every later call; the client secret and API key are secret.
type Credentials struct {
	InstanceID   string
	ClientID     string
	ClientSecret Secret
	APIKey       Secret
}

// Options configure a Client.
type Options struct {
	Credentials Credentials
	// HTTPClient sends the requests; nil means a client with a 60 s
	// timeout.
	HTTPClient *http.Client
	// UserAgent is sent on every request; "" means "sluice-go-client".
	UserAgent string
	// RenewBefore is how long before its expiry a token is renewed. Zero
	// means five minutes, or a fifth of the token's lifetime when that is
	// shorter, so short-lived tokens are not renewed on every call.
	RenewBefore time.Duration
	// Now is the clock used to tell when a token is due for renewal; nil
	// means time.Now. Tests set it to move time without waiting.
	Now func() time.Time
	// Cache keeps the token between Clients (the CLI keeps it between
	// runs, so each command does not exchange and audit a new one); nil
	// keeps it in this Client only. A cached token is used until it is
	// due for renewal, like one held in memory.
	Cache TokenCache
	// PageSize is how many objects each request of a list asks for (the
	// List methods follow the pages to the end); 0 means PageSize.
	PageSize int
}

// TokenCache stores a token outside the Client. Load returns the stored
// token (with its Expiry), or false; Store saves one, and a zero Token
// means forget it (the server refused it). Errors are the cache's own
// business: a cache that cannot store just makes the next Client exchange.
type TokenCache interface {
	Load() (Token, bool)
	Store(Token)
}

// Client calls the Sluice API. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	creds Credentials
	http  *http.Client
	ua    string
	renew time.Duration
	now   func() time.Time
	cache TokenCache
	page  int

	// mu guards the cached token. It is held across an exchange so that
	// concurrent callers needing a token wait for one exchange instead of
	// each starting their own.
	mu    sync.Mutex
	tok   Token
	renAt time.Time // when tok is due for renewal
}

// New returns a client for the Sluice control plane at endpoint (for
// example "http://127.0.0.1:8080"). It does not contact the server; the
// first call does.
func New(endpoint string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("endpoint %q is not a URL: %w", endpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q must be an http:// or https:// URL such as http://127.0.0.1:8080", endpoint)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("endpoint %q must not have a query or fragment", endpoint)
	}
	c := &Client{base: u, creds: opts.Credentials, http: opts.HTTPClient, ua: opts.UserAgent, renew: opts.RenewBefore, now: opts.Now, cache: opts.Cache, page: opts.PageSize}
	if c.http == nil {
		c.http = &http.Client{Timeout: 60 * time.Second}
	}
	if c.ua == "" {
		c.ua = "sluice-go-client"
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.page <= 0 {
		c.page = PageSize
	}
	return c, nil
}

// Endpoint returns the base URL the client calls.
func (c *Client) Endpoint() string { return c.base.String() }

// Token is the answer of a token exchange.
type Token struct {
	AccessToken Secret `json:"access_token"`
	TokenType   string `json:"token_type"`
	Scope       string `json:"scope"`
	ExpiresIn   int64  `json:"expires_in"`
	// Expiry is when the token expires by the client's clock: the time
	// the exchange was sent plus expires_in, so never later than the
	// server's "exp". It is not part of the answer.
	Expiry time.Time `json:"-"`
}

// Token returns a valid access token, exchanging the credentials for a new
// one when none is held or the held one is due for renewal.
func (c *Client) Token(ctx context.Context) (Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tok.AccessToken.IsZero() && c.now().Before(c.renAt) {
		return c.tok, nil
	}
	if c.tok.AccessToken.IsZero() && c.cache != nil {
		if tok, ok := c.cache.Load(); ok && !tok.AccessToken.IsZero() && !tok.Expiry.IsZero() {
			if renAt := tok.Expiry.Add(-c.margin(time.Duration(tok.ExpiresIn) * time.Second)); c.now().Before(renAt) {
				c.tok, c.renAt = tok, renAt
				return tok, nil
			}
		}
	}
	return c.exchangeLocked(ctx)
}

// margin is how long before its expiry a token of lifetime life is renewed.
func (c *Client) margin(life time.Duration) time.Duration {
	if c.renew > 0 {
		return c.renew
	}
	if life <= 0 {
		return 5 * time.Minute
	}
	return min(5*time.Minute, life/5)
}

// Exchange always exchanges the credentials for a new token at
// POST /api/v1/tokens and keeps it for later calls.
func (c *Client) Exchange(ctx context.Context) (Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exchangeLocked(ctx)
}

func (c *Client) exchangeLocked(ctx context.Context) (Token, error) {
	c.tok, c.renAt = Token{}, time.Time{}
	body, err := json.Marshal(struct {
		APIKey string `json:"apiKey"`
	}{c.creds.APIKey.Reveal()})
	if err != nil {
		return Token{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/api/v1/tokens", nil, body)
	if err != nil {
		return Token{}, err
	}
	req.Header.Set("X-IBM-Client-Id", c.creds.ClientID)
	req.Header.Set("X-IBM-Client-Secret", c.creds.ClientSecret.Reveal())
	req.Header.Set("X-IBM-Instance-Id", c.creds.InstanceID)
	sent := c.now()
	var tok Token
	if err := c.send(req, &tok); err != nil {
		return Token{}, fmt.Errorf("token exchange: %w", err)
	}
	if tok.AccessToken.IsZero() || tok.ExpiresIn <= 0 {
		return Token{}, errors.New("token exchange: the answer holds no access token or lifetime")
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	tok.Expiry = sent.Add(life)
	c.tok, c.renAt = tok, tok.Expiry.Add(-c.margin(life))
	if c.cache != nil {
		c.cache.Store(tok)
	}
	return tok, nil
}

// dropToken forgets tok if it is still the one held, so the next call
// exchanges anew; another goroutine may have renewed it meanwhile.
func (c *Client) dropToken(tok Token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.AccessToken.Reveal() == tok.AccessToken.Reveal() {
		c.tok, c.renAt = Token{}, time.Time{}
		if c.cache != nil {
			c.cache.Store(Token{})
		}
	}
}

// Do calls an authenticated endpoint of the API: in, when not nil, is sent
// as the JSON body, and a 2xx answer's JSON body is decoded into out when
// out is not nil. When the server refuses the token (401), Do gets a new
// one and tries once more, so a token invalidated before its expiry heals
// without the caller noticing. Typed methods cover the documented
// endpoints; Do is for the rest.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode the request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.Token(ctx)
		if err != nil {
			return err
		}
		req, err := c.newRequest(ctx, method, path, query, body)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken.Reveal())
		req.Header.Set("X-IBM-Client-Id", c.creds.ClientID)
		err = c.send(req, out)
		if attempt == 0 && IsUnauthorized(err) {
			c.dropToken(tok)
			continue
		}
		return err
	}
}

func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	return req, nil
}

// send does req and decodes a 2xx answer into out, or turns any other
// answer into an *Error.
func (c *Client) send(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return errorFromResponse(resp, b)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: unable to decode the answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}
