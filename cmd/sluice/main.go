// Command sluice is the one binary of Sluice: control plane, integration
// runtime and CLI. This file only hands over to the cli package.
package main

import (
	"os"

	"github.com/sluice-dev/sluice/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:]))
}
