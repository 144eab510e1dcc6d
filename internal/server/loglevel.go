package server

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-dev/sluice/internal/obs"
)

// LogLevelFile, in the data directory, holds the log level a running
// control plane switches to on SIGHUP (debug, info, warn or error); when
// it is absent, SIGHUP restores the level the process started with.
const LogLevelFile = "log-level"

// watchLogLevel sets level from file on every SIGHUP until the returned
// function is called. A file that does not parse changes nothing and
// says so in the log; the process never stops over it.
func watchLogLevel(log *slog.Logger, level *slog.LevelVar, file string) (stop func()) {
	start := level.Level()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
			}
			want, source := start, "the start value (no "+LogLevelFile+" file)"
			b, err := os.ReadFile(file)
			switch {
			case err == nil:
				lv, perr := obs.ParseLevel(string(b))
				if perr != nil {
					log.Warn("log level not changed: the file does not hold a level", "file", file, "err", perr, "level", level.Level().String())
					continue
				}
				want, source = lv, file
			case !errors.Is(err, fs.ErrNotExist):
				log.Warn("log level not changed: the file cannot be read", "file", file, "err", err, "level", level.Level().String())
				continue
			}
			old := level.Level()
			level.Set(want)
			// Said at the new level (info at least), so the line shows
			// whichever way the level moved.
			log.Log(context.Background(), max(want, slog.LevelInfo), "log level changed", "from", old.String(), "to", want.String(), "source", source)
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
