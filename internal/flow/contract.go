package flow

import "sort"

// Contract is what a flow's steps say about its HTTP interface, for
// documents generated from it (a published API without an OpenAPI file of
// its own): the JSON Schemas its top-level validate steps check the body
// against, and the statuses it can answer.
type Contract struct {
	RequestSchemas []string // paths under schemas/, in step order
	Statuses       []int    // sorted: 200 (or constant reply statuses), validate and fail statuses, 500
}

// Contract walks the flow's compiled steps, nested ones included.
func (f *Flow) Contract() Contract {
	var c Contract
	seen := map[int]bool{500: true}
	replied := false
	if f.prog != nil {
		for _, s := range f.prog.steps {
			if v, ok := s.(*validateStep); ok && v.value == nil {
				c.RequestSchemas = append(c.RequestSchemas, v.name)
			}
		}
		walkSteps(f.prog.steps, func(s step) {
			switch s := s.(type) {
			case *validateStep:
				seen[s.status] = true
			case *failStep:
				seen[s.status] = true
			case *replyStep:
				if s.status != nil && s.status.konst {
					if n, ok := s.status.val.(int); ok {
						seen[n], replied = true, true
					}
				}
			}
		})
	}
	if !replied {
		seen[200] = true
	}
	for st := range seen {
		c.Statuses = append(c.Statuses, st)
	}
	sort.Ints(c.Statuses)
	return c
}

func walkSteps(steps []step, fn func(step)) {
	for _, s := range steps {
		fn(s)
		switch s := s.(type) {
		case *switchStep:
			for _, sc := range s.cases {
				walkSteps(sc.steps, fn)
			}
			walkSteps(s.dflt, fn)
		case *forEachStep:
			walkSteps(s.steps, fn)
		case *tryStep:
			walkSteps(s.steps, fn)
			walkSteps(s.catch, fn)
		}
	}
}
