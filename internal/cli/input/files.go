package input

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Document is one object as written in a file: a YAML or JSON document, or one item of
// a List.
type Document struct {
	// Source says where the document was written.
	Source Source
	// Object holds the document as written.
	Object *unstructured.Unstructured
}

// extensions are the files a directory is searched for.
var extensions = []string{".yaml", ".yml", ".json"}

// ParseError is a document that is not a Kubernetes object.
type ParseError struct {
	Source Source
	Err    error
}

// Error names the document and says what is wrong with it.
func (e *ParseError) Error() string { return fmt.Sprintf("%s: %v", e.Source, e.Err) }

// Unwrap returns the parser's error.
func (e *ParseError) Unwrap() error { return e.Err }

// ParseErrors returns the documents ReadFiles could not parse, and false if err holds
// anything else (a file that could not be read).
func ParseErrors(err error) ([]*ParseError, bool) {
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	var out []*ParseError
	for _, e := range errs {
		var pe *ParseError
		if !errors.As(e, &pe) {
			return nil, false
		}
		out = append(out, pe)
	}
	return out, true
}

// ReadFiles reads every document of the given files and directories (searched
// recursively for .yaml, .yml and .json files, in lexical order); "-" reads standard
// input. Lists are expanded into their items; empty documents are skipped. A file that
// cannot be read stops it; documents that cannot be parsed do not, and come back as
// ParseErrors (joined), naming the file and the line of the document.
func ReadFiles(paths []string, stdin io.Reader) ([]Document, error) {
	var docs []Document
	var bad []error
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading standard input: %w", err)
			}
			d, errs := parse("-", b)
			docs, bad = append(docs, d...), append(bad, errs...)
			continue
		}
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f, err)
			}
			d, errs := parse(f, b)
			docs, bad = append(docs, d...), append(bad, errs...)
		}
	}
	return docs, errors.Join(bad...)
}

// expand returns p if it is a file, else the manifest files under it.
func expand(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(extensions, strings.ToLower(filepath.Ext(path))) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("searching %s for manifests: %w", p, err)
	}
	return files, nil
}

// separator is a YAML document separator line.
var separator = regexp.MustCompile(`^---(\s.*)?$`)

// chunk is the text of one document and the line it starts on.
type chunk struct {
	text []byte
	line int
}

// split cuts a YAML stream at its document separators, keeping the line each document
// starts on so that errors can point into the file.
func split(b []byte) []chunk {
	var chunks []chunk
	cur := chunk{line: 1}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), len(b)+1)
	n := 0
	for sc.Scan() {
		n++
		if separator.Match(sc.Bytes()) {
			chunks = append(chunks, cur)
			cur = chunk{line: n + 1}
			continue
		}
		cur.text = append(append(cur.text, sc.Bytes()...), '\n')
	}
	return append(chunks, cur)
}

// parse decodes the documents of one file; the errors are ParseErrors.
func parse(file string, b []byte) ([]Document, []error) {
	var chunks []chunk
	if strings.EqualFold(filepath.Ext(file), ".json") {
		chunks = []chunk{{text: b, line: 1}}
	} else {
		chunks = split(b)
	}
	var docs []Document
	var errs []error
	index := 0
	for _, c := range chunks {
		if blank(c.text) {
			continue
		}
		index++
		src := Source{File: file, Line: c.line, Document: index}
		j, err := yaml.YAMLToJSON(c.text)
		if err != nil {
			errs = append(errs, &ParseError{Source: src, Err: fmt.Errorf("not YAML: %w", err)})
			continue
		}
		var content map[string]any
		if err := json.Unmarshal(j, &content); err != nil {
			errs = append(errs, &ParseError{Source: src, Err: fmt.Errorf("not an object: %w", err)})
			continue
		}
		if content == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: content}
		if u.IsList() {
			items, err := listItems(u, src)
			if err != nil {
				errs = append(errs, err)
			}
			docs = append(docs, items...)
			continue
		}
		if err := checkType(u, src); err != nil {
			errs = append(errs, err)
			continue
		}
		docs = append(docs, Document{Source: src, Object: u})
	}
	return docs, errs
}

// listItems returns the items of a List; the error is a ParseError.
func listItems(u *unstructured.Unstructured, src Source) ([]Document, error) {
	var docs []Document
	n := 0
	err := u.EachListItem(func(o runtime.Object) error {
		n++
		item := src
		item.Item = n
		iu, ok := o.(*unstructured.Unstructured)
		if !ok {
			return &ParseError{Source: item, Err: fmt.Errorf("a list item of type %T", o)}
		}
		if err := checkType(iu, item); err != nil {
			return err
		}
		docs = append(docs, Document{Source: item, Object: iu})
		return nil
	})
	var pe *ParseError
	if err != nil && !errors.As(err, &pe) {
		err = &ParseError{Source: src, Err: fmt.Errorf("reading the list: %w", err)}
	}
	return docs, err
}

// checkType refuses an object without apiVersion or kind; the error is a ParseError.
func checkType(u *unstructured.Unstructured, src Source) error {
	var missing []string
	if u.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if u.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if len(missing) > 0 {
		return &ParseError{Source: src, Err: fmt.Errorf("not a Kubernetes object, it has no %s", strings.Join(missing, " and "))}
	}
	return nil
}

// blank reports whether a document holds only comments and white space.
func blank(b []byte) bool {
	for _, line := range bytes.Split(b, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}
