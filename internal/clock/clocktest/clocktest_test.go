package clocktest

import (
	"testing"
	"time"
)

func TestEpochFromEnvironment(t *testing.T) {
	t.Setenv(EnvEpoch, "2031-06-01T00:00:00Z")
	if got, want := Epoch(), time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Epoch() = %v, want %v", got, want)
	}
	t.Setenv(EnvEpoch, "")
	if got := Epoch(); !got.Equal(DefaultEpoch) {
		t.Fatalf("Epoch() without %s = %v, want %v", EnvEpoch, got, DefaultEpoch)
	}
	t.Setenv(EnvEpoch, "next tuesday")
	defer func() {
		if recover() == nil {
			t.Fatal("a malformed epoch was accepted")
		}
	}()
	Epoch()
}

func TestFakeMovesOnlyWhenTold(t *testing.T) {
	c := New(time.Hour)
	start := c.Now()
	if !start.Equal(Epoch().Add(time.Hour)) {
		t.Fatalf("New(1h) starts at %v, want epoch+1h", start)
	}
	if !c.Now().Equal(start) {
		t.Fatal("the fake clock moved by itself")
	}
	c.Add(90 * time.Second)
	if got := c.Now().Sub(start); got != 90*time.Second {
		t.Fatalf("Add(90s) moved the clock by %v", got)
	}
}
