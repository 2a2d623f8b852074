package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twoway/twoway/internal/agent"
	"github.com/twoway/twoway/internal/functions"
	"github.com/twoway/twoway/internal/httpapi"
)

// fnCommands are the subcommands of "twoway fn".
var fnCommands = []command{
	{name: "deploy", summary: "deploy a WebAssembly module as a function (a new version)", run: runFnDeploy},
	{name: "list", summary: "list the functions: the inventory", run: runFnList},
	{name: "history", summary: "list a function's versions", run: runFnHistory},
	{name: "rollback", summary: "deploy an earlier version again", run: runFnRollback},
	{name: "delete", summary: "delete a function, its actors and timers", run: runFnDelete},
	{name: "invoke", summary: "invoke a function: input on stdin, output on stdout", run: runFnInvoke},
	{name: "state", summary: "print an actor's committed state", run: runFnState},
}

func runFn(ctx context.Context, e *env, args []string) error {
	return runGroup(ctx, e, args, "fn", `Deploy and run functions: WebAssembly modules with durable keyed state
(docs/FUNCTIONS.md).
`+connectHelp, fnCommands)
}

// withFunctions opens the connection as a functions client and runs f.
func withFunctions(ctx context.Context, e *env, conn *connection, f func(c *functions.Client) error) error {
	return withHTTP(ctx, e, conn, func(base string, hc *http.Client) error { return f(functions.NewClient(base, hc)) })
}

// withHTTP runs f with the agent's base URL and an HTTP client: the
// agent at --server, or one this command opens on --bucket, served in
// process.
func withHTTP(ctx context.Context, e *env, conn *connection, f func(base string, hc *http.Client) error) error {
	set := map[string]bool{}
	conn.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["server"] && set["bucket"] {
		return conn.usageError(e, errors.New("give --server or --bucket, not both"))
	}
	if *conn.server != "" {
		base := *conn.server
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		return conn.explain(f(base, conn.httpClient()))
	}
	a, err := agent.Open(ctx, agent.Config{Bucket: *conn.bucket, NoJanitor: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer a.Close()
	return f("http://in-process", &http.Client{Transport: httpapi.InProcessTransport(a.HTTP)})
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func runFnDeploy(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("fn deploy", "twoway fn deploy NAME --module FILE.wasm [--grant CAP]... [--subscribe TOPIC] [--http] [--config K=V]... [--memory SIZE] [--timeout D] [--max-concurrency N]", `
Deploy FILE.wasm as a new version of function NAME. In-flight invocations
finish on the old version; actors keep their state. The module's imports
are checked against the grants: an import whose capability is not granted
refuses the deploy. Capabilities: state, timers, log, metrics, config,
publish:TOPIC, read:TOPIC, http:HOST.

With --subscribe, every record of TOPIC invokes the actor of its key,
exactly once; records that keep failing go to the topic NAME.dlq. With
--http, requests to /fn/NAME/... are the function's.
`+connectHelp)
	modFile := fs.String("module", "", "the WebAssembly module `FILE.wasm`")
	var grants, subscribe, config multiFlag
	fs.Var(&grants, "grant", "grant a `capability` (repeatable)")
	fs.Var(&subscribe, "subscribe", "invoke the function for every record of `TOPIC` (repeatable)")
	httpTrigger := fs.Bool("http", false, "serve HTTP requests to /fn/NAME/... with the function")
	fs.Var(&config, "config", "a config value `K=V` the function reads (repeatable)")
	memory := fs.String("memory", "", "most linear memory an instance may use, a `size` such as 16MiB (default 16MiB)")
	timeout := fs.Duration("timeout", 0, "wall-clock `limit` per invocation (default 5s)")
	conc := fs.Int("max-concurrency", 0, "most invocations at once per agent (default 16)")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "function name")
	if err != nil {
		return err
	}
	if *modFile == "" {
		return conn.usageError(e, errors.New("--module FILE.wasm is required"))
	}
	wasm, err := os.ReadFile(*modFile)
	if err != nil {
		return err
	}
	body := functions.DeployBody{Module: wasm, Grants: grants, Subscribe: subscribe, HTTP: *httpTrigger, Config: map[string]string{}}
	for _, kv := range config {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return conn.usageError(e, fmt.Errorf("--config %q: use K=V", kv))
		}
		body.Config[k] = v
	}
	if *memory != "" {
		n, err := parseByteSize(*memory)
		if err != nil || n < 64<<10 {
			return conn.usageError(e, fmt.Errorf("--memory %q: give a size of at least 64KiB, such as 16MiB", *memory))
		}
		body.Limits.MemoryPages = uint32((n + 64<<10 - 1) / (64 << 10))
	}
	if *timeout < 0 || (*timeout > 0 && *timeout < time.Millisecond) {
		return conn.usageError(e, fmt.Errorf("--timeout %v: give at least 1ms", *timeout))
	}
	body.Limits.TimeoutMs = timeout.Milliseconds()
	if *conc < 0 {
		return conn.usageError(e, fmt.Errorf("--max-concurrency %d: give at least 1", *conc))
	}
	body.Limits.MaxConcurrency = *conc
	return withFunctions(ctx, e, conn, func(c *functions.Client) error {
		d, err := c.Deploy(ctx, pos[0], body)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "deployed %s version %d (module sha256 %s, %s)\n", d.Name, d.Version, d.Module, humanSize(d.Size))
		return err
	})
}

func triggers(d functions.Info) string {
	var t []string
	if d.HTTP {
		t = append(t, "http")
	}
	for _, s := range d.Subscribe {
		t = append(t, "subscribe:"+s)
	}
	if len(t) == 0 {
		return "-"
	}
	return strings.Join(t, ",")
}

func hostImports(d functions.Info) string {
	var out []string
	for _, imp := range d.Imports {
		if s, ok := strings.CutPrefix(imp, "twoway_v1."); ok {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func runFnList(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("fn list", "twoway fn list [--json]", `
List the functions with their live version: module sha256 and size, the
twoway_v1 imports the module uses, grants, triggers, limits and when it
was deployed.
`+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	if _, err := fs.parseArgs(e, args); err != nil {
		return err
	}
	return withFunctions(ctx, e, conn, func(c *functions.Client) error {
		list, err := c.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if list == nil {
				list = []functions.Info{}
			}
			return printJSON(e.stdout, list)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tMODULE\tSIZE\tIMPORTS\tGRANTS\tTRIGGERS\tMEMORY\tTIMEOUT\tDEPLOYED")
		for _, d := range list {
			fmt.Fprintf(tw, "%s\t%d\t%.12s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Name, d.Version, d.Module, humanSize(d.Size),
				hostImports(d), orDash(d.Grants), triggers(d), formatByteSize(int64(d.Limits.MemoryPages)*64<<10),
				time.Duration(d.Limits.TimeoutMs)*time.Millisecond, d.DeployedAt)
		}
		return tw.Flush()
	})
}

func runFnHistory(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("fn history", "twoway fn history NAME [--json]", "List every version of a function, oldest first.\n"+connectHelp)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "function name")
	if err != nil {
		return err
	}
	return withFunctions(ctx, e, conn, func(c *functions.Client) error {
		hist, err := c.History(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, hist)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tMODULE\tSIZE\tGRANTS\tTRIGGERS\tDEPLOYED\tNOTE")
		for i, d := range hist {
			note := ""
			if d.RollbackOf > 0 {
				note = "rollback to " + strconv.Itoa(d.RollbackOf)
			}
			if i == len(hist)-1 {
				note = strings.TrimSpace("live " + note)
			}
			fmt.Fprintf(tw, "%d\t%.12s\t%s\t%s\t%s\t%s\t%s\n", d.Version, d.Module, humanSize(d.Size), orDash(d.Grants), triggers(d), d.DeployedAt, note)
		}
		return tw.Flush()
	})
}

func runFnRollback(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("fn rollback", "twoway fn rollback NAME [--to VERSION]", `
Deploy an earlier version of a function again, as a new version: by
default the one live before the current one.
`+connectHelp)
	to := fs.Int("to", 0, "the `version` to deploy again")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "function name")
	if err != nil {
		return err
	}
	return withFunctions(ctx, e, conn, func(c *functions.Client) error {
		d, err := c.Rollback(ctx, pos[0], *to)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdout, "rolled %s back to version %d, now live as version %d\n", d.Name, d.RollbackOf, d.Version)
		return err
	})
}

func runFnDelete(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("fn delete", "twoway fn delete NAME", "Delete a function with its versions, actors' state, timers and input positions.\nIts dead-letter topic stays.\n"+connectHelp)
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "function name")
	if err != nil {
		return err
	}
	return withFunctions(ctx, e, conn, func(c *functions.Client) error {
		if err := c.Delete(ctx, pos[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(e.stdout, "deleted function %s\n", pos[0])
		return err
	})
}

func runFnInvoke(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("fn invoke", "twoway fn invoke NAME [--key K] [--method M]", `
Invoke a function with stdin as its input and print its output. With
--key, the invocation is a turn of that actor: its state changes and
what it publishes commit together, exactly once. An answer of status 400
or more exits with an error after printing the output.
`+connectHelp)
	key := fs.String("key", "", "the actor `key`")
	method := fs.String("method", "", "the `method` name the function is given")
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "function name")
	if err != nil {
		return err
	}
	keyed := false
	fs.Visit(func(f *flag.Flag) { keyed = keyed || f.Name == "key" })
	input, err := io.ReadAll(e.stdin)
	if err != nil {
		return err
	}
	return withFunctions(ctx, e, conn, func(c *functions.Client) error {
		var k *string
		if keyed {
			k = key
		}
		resp, err := c.Invoke(ctx, pos[0], k, *method, input)
		if err != nil {
			return err
		}
		e.stdout.Write(resp.Body)
		if resp.Status >= 400 {
			return fmt.Errorf("%s answered status %d", pos[0], resp.Status)
		}
		return nil
	})
}

func runFnState(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet("fn state", "twoway fn state NAME KEY", "Print the committed state of actor KEY of function NAME.\n"+connectHelp)
	conn := addConnectionFlags(fs)
	pos, err := fs.parseArgs(e, args, "function name", "actor key")
	if err != nil {
		return err
	}
	return withFunctions(ctx, e, conn, func(c *functions.Client) error {
		v, err := c.Actor(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		e.stdout.Write(v)
		if len(v) > 0 && v[len(v)-1] != '\n' {
			fmt.Fprintln(e.stdout)
		}
		return nil
	})
}
