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

// ReadFiles reads every document of the given files and directories (searched
// recursively for .yaml, .yml and .json files, in lexical order); "-" reads standard
// input. Lists are expanded into their items; empty documents are skipped. An error
// names the file and the line of the document that could not be read.
func ReadFiles(paths []string, stdin io.Reader) ([]Document, error) {
	var docs []Document
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading standard input: %w", err)
			}
			d, err := parse("-", b)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
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
			d, err := parse(f, b)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
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

// parse decodes the documents of one file.
func parse(file string, b []byte) ([]Document, error) {
	var chunks []chunk
	if strings.EqualFold(filepath.Ext(file), ".json") {
		chunks = []chunk{{text: b, line: 1}}
	} else {
		chunks = split(b)
	}
	var docs []Document
	index := 0
	for _, c := range chunks {
		if blank(c.text) {
			continue
		}
		index++
		src := Source{File: file, Line: c.line, Document: index}
		j, err := yaml.YAMLToJSON(c.text)
		if err != nil {
			return nil, fmt.Errorf("%s: not YAML: %w", src, err)
		}
		var content map[string]any
		if err := json.Unmarshal(j, &content); err != nil {
			return nil, fmt.Errorf("%s: not an object: %w", src, err)
		}
		if content == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: content}
		if u.IsList() {
			items, err := listItems(u, src)
			if err != nil {
				return nil, err
			}
			docs = append(docs, items...)
			continue
		}
		if err := checkType(u, src); err != nil {
			return nil, err
		}
		docs = append(docs, Document{Source: src, Object: u})
	}
	return docs, nil
}

func listItems(u *unstructured.Unstructured, src Source) ([]Document, error) {
	var docs []Document
	err := u.EachListItem(func(o runtime.Object) error {
		item := src
		item.Item = len(docs) + 1
		iu, ok := o.(*unstructured.Unstructured)
		if !ok {
			return fmt.Errorf("%s: list item of type %T", item, o)
		}
		if err := checkType(iu, item); err != nil {
			return err
		}
		docs = append(docs, Document{Source: item, Object: iu})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: reading the list: %w", src, err)
	}
	return docs, nil
}

func checkType(u *unstructured.Unstructured, src Source) error {
	var missing []string
	if u.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if u.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %w: %s", src, errNoType, strings.Join(missing, " and "))
	}
	return nil
}

var errNoType = errors.New("not a Kubernetes object, it has no")

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
