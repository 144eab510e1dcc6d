// Command baseline is the benchmark's reference: a hand-written net/http
// server (package bench/handwritten) doing the transforms of bench/project
// with encoding/json and typed structs, as a developer would write them
// without Sluice: POST /transform/{customer} and the heavy scenario's POST
// /lines/{customer}. The benchmark reports the runtime's throughput as a
// ratio of this server's.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/sluice-dev/sluice/bench/handwritten"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7900", "address to listen on")
	flag.Parse()
	log.Fatal(http.ListenAndServe(*listen, handwritten.Mux()))
}
