package barstore

import (
	"errors"
	"testing"
)

// TestValidationSlots: MaxValidations uploads are validated at once; the
// next is refused with a BusyError (never queued), and a released slot is
// taken again.
func TestValidationSlots(t *testing.T) {
	s := &Service{MaxValidations: 2}
	r1, err := s.acquire()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.acquire()
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.acquire()
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Limit != 2 || busy.RetryAfter <= 0 {
		t.Fatalf("third validation: %v, want a BusyError with the limit 2", err)
	}
	r1()
	r3, err := s.acquire()
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	r2()
	r3()
	if (&Service{}).maxValidations() != DefaultMaxValidations {
		t.Fatal("zero MaxValidations is not the default")
	}
}
