package flowapis

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/federation"
)

// archiveFacts is what the provider reads from a BAR's bytes.
type archiveFacts struct {
	docs        []federation.Document
	description string // the project's; not every source's metadata carries it
}

// readArchive spools a BAR to a temporary file (a zip needs random
// access; BARs are too big to hold in memory as a rule), loads its project
// as an upload does, and reads the OpenAPI documents under openapi/, in
// name order.
func readArchive(ctx context.Context, r io.Reader, tempDir, name string) (archiveFacts, error) {
	var facts archiveFacts
	f, err := os.CreateTemp(tempDir, "federation-*.bar")
	if err != nil {
		return facts, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, io.LimitReader(r, bar.DefaultLimits.MaxArchiveSize+1)); err != nil {
		return facts, fmt.Errorf("unable to fetch BAR file %s: %w", name, err)
	}
	a, err := bar.Open(f.Name(), nil)
	if err != nil {
		return facts, err
	}
	defer a.Close()
	project, err := a.Load(ctx, nil)
	if err != nil {
		return facts, err
	}
	facts.description = a.Describe(project).Description
	for _, file := range a.Files() {
		if !strings.HasPrefix(file, "openapi/") {
			continue
		}
		switch strings.ToLower(path.Ext(file)) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		content, err := readLimited(a.FS(), file)
		if err != nil {
			return facts, fmt.Errorf("%s: %w", file, err)
		}
		facts.docs = append(facts.docs, federation.Document{Kind: federation.DocOpenAPI, Filename: path.Base(file), Content: content})
	}
	return facts, nil
}

func readLimited(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocumentSize {
		return nil, fmt.Errorf("the document is larger than %d bytes", MaxDocumentSize)
	}
	return b, nil
}
