package main

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// rssBySection splits the resident part of a process's own executable by
// section (code, read-only data, the pc tables the Go runtime reads to
// walk stacks), from /proc/PID/pagemap's present bits: what the idle
// process touched of the binary, and so what it would need to stop
// touching to hold less. Pages are counted where a section starts
// (a page shared by two sections counts once, for the first).
func rssBySection(pid int) string {
	f, err := elf.Open(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "?"
	}
	defer f.Close()
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return "?"
	}
	defer pm.Close()
	const page = 4096
	present := func(addr uint64) bool {
		var b [8]byte
		if _, err := pm.ReadAt(b[:], int64(addr/page*8)); err != nil {
			return false
		}
		return binary.LittleEndian.Uint64(b[:])&(1<<63) != 0
	}
	groups := []struct {
		label    string
		sections []string
	}{
		{"text", []string{".text"}},
		{"rodata", []string{".rodata", ".typelink", ".itablink"}},
		{"pclntab", []string{".gopclntab"}},
		{"data", []string{".go.buildinfo", ".noptrdata", ".data", ".bss", ".noptrbss"}},
	}
	counted := map[uint64]bool{}
	var parts []string
	for _, g := range groups {
		var n uint64
		for _, name := range g.sections {
			s := f.Section(name)
			if s == nil || s.Addr == 0 {
				continue
			}
			for a := s.Addr &^ (page - 1); a < s.Addr+s.Size; a += page {
				if !counted[a] && present(a) {
					counted[a] = true
					n += page
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%s %.1f", g.label, float64(n)/1e6))
	}
	return "executable: " + strings.Join(parts, ", ") + " MB"
}
