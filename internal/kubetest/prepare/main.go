// Command prepare builds the kube-apiserver the Kubernetes tests run
// (package kubetest) into the cache, once: `go run ./internal/kubetest/prepare`.
// .ci/run calls it before the tests so the build, minutes long the first
// time, is not spent under a test's timeout. It prints the binary's path.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sluice-dev/sluice/internal/kubetest"
)

func main() {
	bin, err := kubetest.Binary(context.Background(), true, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
