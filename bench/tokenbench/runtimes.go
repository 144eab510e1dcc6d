package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/sluice-dev/sluice/client"
)

// listedRuntimes is how many integration runtimes the list target reads
// (issue 18 item 3: "a list of 10 runtimes").
const listedRuntimes = 10

// seedRuntimes uploads examples/hello (built by the sluice under test)
// and creates the runtimes the list target reads, each running it, but
// stopped (replicas 0) so that no runtime process competes with the
// servers for their CPU.
func seedRuntimes(ctx context.Context, sluice, tmp string, c creds) error {
	bar := filepath.Join(tmp, "hello.bar")
	if out, err := exec.Command(sluice, "bar", "build", "examples/hello", "-o", bar).CombinedOutput(); err != nil {
		return fmt.Errorf("sluice bar build examples/hello: %v\n%s", err, out)
	}
	cl, err := client.New(c.Endpoint, client.Options{Credentials: client.Credentials{InstanceID: c.InstanceID, ClientID: c.ClientID,
		ClientSecret: client.NewSecret(c.ClientSecret), APIKey: client.NewSecret(c.APIKey)}})
	if err != nil {
		return err
	}
	f, err := os.Open(bar)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	up, err := cl.PutBARFile(ctx, "hello", f, fi.Size(), nil)
	if err != nil {
		return fmt.Errorf("upload hello.bar: %w", err)
	}
	stopped := 0
	for i := 1; i <= listedRuntimes; i++ {
		rt := client.IntegrationRuntime{Metadata: client.RuntimeMetadata{Name: fmt.Sprintf("bench-%02d", i)},
			Spec: client.RuntimeSpec{BarURL: []string{up.URL}, Replicas: &stopped}}
		if _, err := cl.PutRuntime(ctx, rt); err != nil {
			return fmt.Errorf("create runtime %d of %d: %w", i, listedRuntimes, err)
		}
	}
	return nil
}
