// Command benthos is the runtime benchmark's peer (bench/run.sh): Benthos,
// Redpanda's open-source Go stream processor, built from
// github.com/redpanda-data/benthos/v4 with only its pure and io components
// (http_server, mapping and sync_response are among them), and run on
// config.yaml, which does bench/project's transform. It lives in its own
// module so that Sluice's main module does not depend on Benthos.
package main

import (
	"context"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
