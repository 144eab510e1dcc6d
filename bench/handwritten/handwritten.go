// Package handwritten holds the benchmark's reference handlers: what a
// developer would write by hand, with net/http, encoding/json and typed
// structs, for the flows of bench/project. bench/baseline serves them, and
// the runtime's Go benchmarks call them in process.
package handwritten

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// Mux routes both flows' paths.
func Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /transform/{customer}", Transform)
	mux.HandleFunc("POST /lines/{customer}", Lines)
	return mux
}

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

// Transform is bench/project's transform flow (HTTP → map → reply).
func Transform(w http.ResponseWriter, r *http.Request) {
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

// The heavy scenario (bench/project/flows/lines.yaml): a ~20 KB order
// checked as bench/project/schemas/order.json says, then each line priced.

type lineItem struct {
	SKU   *string  `json:"sku"`
	Name  *string  `json:"name"`
	Qty   *float64 `json:"qty"`
	Price *float64 `json:"price"`
	Tags  []string `json:"tags"`
}

type lineOrder struct {
	ID       *string    `json:"id"`
	Currency *string    `json:"currency"`
	Items    []lineItem `json:"items"`
}

type line struct {
	SKU    string  `json:"sku"`
	Label  string  `json:"label"`
	Amount float64 `json:"amount"`
}

type lineSummary struct {
	Customer string  `json:"customer"`
	Order    string  `json:"order"`
	Count    int     `json:"count"`
	Total    float64 `json:"total"`
	Lines    []line  `json:"lines"`
}

// validOrder is the schema's rules written out; it names the first
// violation.
func validOrder(o *lineOrder) string {
	if o.ID == nil || len(*o.ID) < 1 || utf8.RuneCountInString(*o.ID) > 64 {
		return "id"
	}
	if o.Currency != nil && !currencyRE.MatchString(*o.Currency) {
		return "currency"
	}
	if len(o.Items) < 1 || len(o.Items) > 500 {
		return "items"
	}
	for i, it := range o.Items {
		switch {
		case it.SKU == nil || !skuRE.MatchString(*it.SKU):
			return fmt.Sprintf("items/%d/sku", i)
		case it.Name != nil && utf8.RuneCountInString(*it.Name) > 200:
			return fmt.Sprintf("items/%d/name", i)
		case it.Qty == nil || *it.Qty < 1 || *it.Qty != math.Trunc(*it.Qty):
			return fmt.Sprintf("items/%d/qty", i)
		case it.Price == nil || *it.Price < 0:
			return fmt.Sprintf("items/%d/price", i)
		}
	}
	return ""
}

var (
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	skuRE      = regexp.MustCompile(`^[A-Z]{3}-[0-9]{3}$`)
)

// Lines is bench/project's lines flow.
func Lines(w http.ResponseWriter, r *http.Request) {
	var o lineOrder
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20)).Decode(&o); err != nil {
		http.Error(w, `{"message":"bad request"}`, http.StatusBadRequest)
		return
	}
	if bad := validOrder(&o); bad != "" {
		http.Error(w, `{"message":"does not match the schema at /`+bad+`"}`, http.StatusBadRequest)
		return
	}
	s := lineSummary{Customer: r.PathValue("customer"), Order: *o.ID, Count: len(o.Items), Lines: make([]line, 0, len(o.Items))}
	for _, it := range o.Items {
		name := "null" // as jq interpolates a missing name
		if it.Name != nil {
			name = *it.Name
		}
		amount := *it.Price * *it.Qty
		s.Lines = append(s.Lines, line{SKU: *it.SKU, Label: strconv.FormatFloat(*it.Qty, 'f', -1, 64) + " × " + name, Amount: amount})
		s.Total += amount
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s)
}
