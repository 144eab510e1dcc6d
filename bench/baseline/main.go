// Command baseline is the benchmark's reference: a hand-written net/http
// server doing the transform of bench/project (HTTP → map → reply) with
// encoding/json and typed structs, as a developer would write it without
// Sluice. The benchmark reports the runtime's throughput as a ratio of
// this server's.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
)

type item struct {
	SKU   string  `json:"sku"`
	Qty   float64 `json:"qty"`
	Price float64 `json:"price"`
}

type order struct {
	Items []item `json:"items"`
}

type summary struct {
	Customer string   `json:"customer"`
	SKUs     []string `json:"skus"`
	Quantity float64  `json:"quantity"`
	Total    float64  `json:"total"`
}

func transform(w http.ResponseWriter, r *http.Request) {
	var o order
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&o); err != nil {
		http.Error(w, `{"message":"bad request"}`, http.StatusBadRequest)
		return
	}
	s := summary{Customer: r.PathValue("customer"), SKUs: make([]string, 0, len(o.Items))}
	for _, it := range o.Items {
		s.SKUs = append(s.SKUs, it.SKU)
		s.Quantity += it.Qty
		s.Total += it.Price * it.Qty
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:7900", "address to listen on")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /transform/{customer}", transform)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
