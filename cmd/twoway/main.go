// Command twoway turns a bucket (S3 or a local directory) into a streaming
// platform.
//
// Usage:
//
//	twoway <command> [flags]
//
// Run "twoway --help" for the commands and "twoway <command> --help" for
// their flags. This package only parses flags and wires packages together;
// the work happens in embeddable packages (internal/httpapi, internal/bench,
// the bucket packages).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twoway/twoway/internal/agent"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // the command line was wrong
)

// command is one subcommand. run gets the arguments after the command name.
type command struct {
	name    string
	summary string // one line for "twoway --help"
	run     func(ctx context.Context, env *env, args []string) error
}

// commands lists the subcommands in the order "twoway --help" shows them.
var commands = []command{
	{name: "serve", summary: "serve the HTTP API (health, metrics) on a bucket", run: runServe},
	{name: "topic", summary: "create, list, describe, alter and delete topics", run: runTopic},
	{name: "produce", summary: "write lines of stdin to a topic as records", run: runProduce},
	{name: "consume", summary: "print a topic's records", run: runConsume},
	{name: "user", summary: "create, list and delete the users that authenticate (SASL, HTTP Basic)", run: runUser},
	{name: "token", summary: "create, list and revoke HTTP bearer tokens", run: runToken},
	{name: "acl", summary: "add, list and delete the ACLs that authorize principals (with serve --auth)", run: runACL},
	{name: "fn", summary: "deploy, list, invoke and roll back functions (WebAssembly)", run: runFn},
	{name: "table", summary: "create, list, describe, alter and drop tables (topics as Iceberg tables)", run: runTable},
	{name: "sql", summary: "run a SQL query over the tables and topics (DuckDB)", run: runSQL},
	{name: "bucket", summary: "copy a deployment to another bucket (directory, S3), consistently, while it serves", run: runBucket},
	{name: "mirror", summary: "replicate topics to another deployment continuously, exactly once (edge to cloud and back)", run: runMirror},
	{name: "bench", summary: "measure a bucket's throughput and latency", run: runBench},
}

// env is what a command may touch of the outside world, so that tests can run
// commands in-process too.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// usageError is a mistake on the command line: it exits 2 after printing
// the usage of the command concerned.
type usageError struct {
	err   error
	usage func() // prints the relevant usage to stderr
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal asks for a clean stop; a second one kills the
		// process as if twoway had not asked for signals at all.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

// run runs the command line args (without the program name) and returns the
// exit code.
func run(ctx context.Context, e *env, args []string) int {
	err := dispatch(ctx, e, args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if ue, ok := errors.AsType[*usageError](err); ok {
		fmt.Fprintf(e.stderr, "twoway: %s\n\n", oneLine(ue.err))
		ue.usage()
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "twoway: %s\n", oneLine(err))
	return exitError
}

func dispatch(ctx context.Context, e *env, args []string) error {
	usage := func() { printUsage(e.stderr) }
	if len(args) == 0 {
		return &usageError{err: errors.New("no command given"), usage: usage}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		printUsage(e.stdout)
		return nil
	case "help":
		if len(rest) == 0 {
			printUsage(e.stdout)
			return nil
		}
		// "twoway help serve" is "twoway serve --help".
		name, rest = rest[0], []string{"--help"}
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, rest)
		}
	}
	if strings.HasPrefix(name, "-") {
		return &usageError{err: fmt.Errorf("flag %s given before any command", name), usage: usage}
	}
	return &usageError{err: fmt.Errorf("unknown command %q", name), usage: usage}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `twoway turns a bucket (S3 or a local directory) into a streaming platform.

Usage:
  twoway <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "twoway <command> --help" for a command's flags.
`)
}

// flagSet is a command's flags with the text its --help prints.
type flagSet struct {
	*flag.FlagSet
	synopsis    string // e.g. "twoway serve [flags]"
	description string
}

// lingerFlag defines --linger. Unset, the backend's default applies; set,
// even to 0, it is what the user asked for (agent.NoLinger for 0).
func (fs *flagSet) lingerFlag(usage string) func() time.Duration {
	v := fs.Duration("linger", 0, usage)
	return func() time.Duration {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "linger" })
		if set && *v == 0 {
			return agent.NoLinger
		}
		return *v
	}
}

func newFlagSet(name, synopsis, description string) *flagSet {
	fs := &flagSet{
		FlagSet:     flag.NewFlagSet(name, flag.ContinueOnError),
		synopsis:    synopsis,
		description: strings.TrimSpace(description),
	}
	// parse reports errors and help itself, in the words and on the stream
	// it chooses.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// usage prints the synopsis, the description and the flags to w.
func (fs *flagSet) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage:\n  %s\n\n%s\n", fs.synopsis, fs.description)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprint(w, "\nFlags:\n")
			first = false
		}
		// As flag.PrintDefaults, but spelled the way this help writes
		// flags: --name.
		arg, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		fmt.Fprintf(w, "\n        %s", strings.ReplaceAll(usage, "\n", "\n        "))
		if g, ok := f.Value.(flag.Getter); ok {
			switch v := g.Get().(type) {
			case string:
				if v != "" {
					fmt.Fprintf(w, " (default %q)", v)
				}
			case bool:
			default:
				if f.DefValue == "0" || f.DefValue == "0s" {
					break
				}
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
		} else if f.DefValue != "" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// parse parses args. --help prints the usage to stdout and returns
// flag.ErrHelp; a bad flag, or more than maxArgs positional arguments, is a
// usageError.
func (fs *flagSet) parse(e *env, args []string, maxArgs int) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.usage(e.stdout)
		return flag.ErrHelp
	}
	if err == nil && fs.NArg() > maxArgs {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(maxArgs))
	}
	if err != nil {
		return &usageError{err: fmt.Errorf("%s: %w", fs.Name(), err), usage: func() { fs.usage(e.stderr) }}
	}
	return nil
}

// oneLine folds a multi-line error message onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// runGroup runs one of cmds, the subcommands of "twoway group": about is
// the group's help text (before the list of commands).
func runGroup(ctx context.Context, e *env, args []string, group, about string, cmds []command) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage:\n  twoway %s <command> [flags]\n\n%s\n\nCommands:\n", group, strings.TrimSpace(about))
		width := 0
		for _, c := range cmds {
			width = max(width, len(c.name))
		}
		for _, c := range cmds {
			fmt.Fprintf(w, "  %-*s %s\n", width+1, c.name, c.summary)
		}
		fmt.Fprintf(w, "\nRun \"twoway %s <command> --help\" for a command's flags.\n", group)
	}
	if len(args) == 0 {
		return &usageError{err: fmt.Errorf("%s: no command given", group), usage: func() { usage(e.stderr) }}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(e.stdout)
		return nil
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return &usageError{err: fmt.Errorf("%s: unknown command %q", group, args[0]), usage: func() { usage(e.stderr) }}
}
