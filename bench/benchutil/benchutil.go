// Package benchutil holds what the benchmarks share: the token exchange
// from initial-credentials.json, a free loopback address, running a build
// step and a process's CPU time. It is for bench/ programs only.
package benchutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Login exchanges the initial credentials in credsPath for a token at the
// control plane at url, returning the token and the client id to send
// with it.
func Login(url, credsPath string) (token, clientID string) {
	var c struct{ ClientID, ClientSecret, InstanceID, APIKey string }
	b, err := os.ReadFile(credsPath)
	Check(err)
	Check(json.Unmarshal(b, &c))
	req, _ := http.NewRequest("POST", url+"/api/v1/tokens", strings.NewReader(`{"apiKey":"`+c.APIKey+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-IBM-Client-Id", c.ClientID)
	req.Header.Set("X-IBM-Client-Secret", c.ClientSecret)
	req.Header.Set("x-ibm-instance-id", c.InstanceID)
	resp, err := http.DefaultClient.Do(req)
	Check(err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.Fatalf("token exchange: %s", resp.Status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	Check(json.NewDecoder(resp.Body).Decode(&tok))
	return tok.AccessToken, c.ClientID
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func FreeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Check(err)
	defer ln.Close()
	return ln.Addr().String()
}

// Run runs a command with its output on standard error, or exits.
func Run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	Check(cmd.Run())
}

// Check exits on err.
func Check(err error) {
	if err != nil {
		log.Fatal(fmt.Errorf("bench: %w", err))
	}
}

// CPUTime is the user+system CPU time of process pid so far, from
// /proc/<pid>/stat (clock ticks of 10 ms, Linux's USER_HZ). Other load on
// the machine moves it much less than it moves throughput.
func CPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may
	// contain spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
