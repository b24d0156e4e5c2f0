// Package output holds what every intentguard command shares in how it answers: the
// streams (data on standard output, logs on standard error), the -o formats, exit
// codes, JSON and JUnit writers, and the logger.
package output

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// Streams are where a command reads and writes: data goes to Out, logs and errors to Err,
// so that Out can be piped into another tool.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// Exit codes of every command, for CI.
const (
	// ExitOK means the command ran and found nothing wrong.
	ExitOK = 0
	// ExitFindings means the command ran and the input failed its checks (invalid
	// objects, a failed assertion).
	ExitFindings = 1
	// ExitUsage means the command could not run: bad flags or arguments, unreadable
	// files, an unreachable cluster.
	ExitUsage = 2
	// ExitRefused means plan ran and --fail-on refuses the change it found: a CI job
	// tells a change that needs a reviewer's eye from a broken input.
	ExitRefused = 3
)

// ExitError ends a command with Code; its message, if any, is printed on standard error.
type ExitError struct {
	Code int
	Err  error
}

// Error returns the message of Err, or the code when there is none.
func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

// Unwrap returns Err.
func (e *ExitError) Unwrap() error { return e.Err }

// Findings returns the error that makes a command exit with ExitFindings after it has
// written its report; err may be nil when the report says it all.
func Findings(err error) error { return &ExitError{Code: ExitFindings, Err: err} }

// CodeOf returns the exit code for an error a command returned: ExitOK for nil, the code
// of an ExitError, else ExitUsage.
func CodeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *ExitError
	if errors.As(err, &e) {
		return e.Code
	}
	return ExitUsage
}

// Format is an output format, the value of -o.
type Format string

// The formats commands offer; each command accepts the ones that make sense for it.
const (
	Text     Format = "text"
	JSON     Format = "json"
	JUnit    Format = "junit"
	Markdown Format = "markdown"
	DOT      Format = "dot"
	Mermaid  Format = "mermaid"
	SVG      Format = "svg"
	YAML     Format = "yaml"
	Table    Format = "table"
)

// FormatFlag is a -o flag that accepts only the formats a command offers.
type FormatFlag struct {
	value   Format
	allowed []Format
}

// NewFormatFlag returns a flag set to def that accepts def and allowed.
func NewFormatFlag(def Format, allowed ...Format) *FormatFlag {
	return &FormatFlag{value: def, allowed: append([]Format{def}, allowed...)}
}

// Format returns the chosen format.
func (f *FormatFlag) Format() Format { return f.value }

// String returns the chosen format.
func (f *FormatFlag) String() string { return string(f.value) }

// Set chooses a format, refusing one the command does not offer.
func (f *FormatFlag) Set(s string) error {
	if !slices.Contains(f.allowed, Format(s)) {
		return fmt.Errorf("unknown format %q: use %s", s, f.Usage())
	}
	f.value = Format(s)
	return nil
}

// Type names the flag's values in --help.
func (f *FormatFlag) Type() string { return "format" }

// Usage lists the formats offered.
func (f *FormatFlag) Usage() string {
	names := make([]string, len(f.allowed))
	for i, a := range f.allowed {
		names[i] = string(a)
	}
	return strings.Join(names, "|")
}

// WriteJSON writes v as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// Logger returns a logger writing to w at the given verbosity (0 prints only what a user
// should read; higher numbers add detail).
func Logger(w io.Writer, verbosity int) logr.Logger {
	return funcr.New(func(prefix, args string) {
		if prefix != "" {
			fmt.Fprintln(w, prefix+": "+args)
			return
		}
		fmt.Fprintln(w, args)
	}, funcr.Options{Verbosity: verbosity})
}
