// Command drover-testsvc is the service the Debian fleet test
// (internal/fleettest) packages and rolls out. It reads its version from
// /usr/share/drover-testsvc/version (shipped by each package) and serves
// http://127.0.0.1:8080/health: 200 "ok VERSION", except version 1.2,
// which starts fine but answers 503, and version 1.4, which keeps its
// state in /srv/data and answers 503 where it cannot write there (a
// node whose data file system is read-only).
//
//	drover-testsvc serve
//	drover-testsvc hold-lock FILE DURATION
//
// hold-lock holds a POSIX (fcntl) write lock on FILE, as apt and dpkg
// take theirs, for DURATION: flock(1) takes a BSD lock that apt does not
// see.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

const (
	versionFile = "/usr/share/drover-testsvc/version"
	stateDir    = "/srv/data" // where version 1.4 keeps its state
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: drover-testsvc serve | hold-lock FILE DURATION")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve()
	case "hold-lock":
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "usage: drover-testsvc hold-lock FILE DURATION")
			os.Exit(2)
		}
		holdLock(os.Args[2], os.Args[3])
	default:
		fmt.Fprintf(os.Stderr, "drover-testsvc: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func serve() {
	b, err := os.ReadFile(versionFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drover-testsvc:", err)
		os.Exit(1)
	}
	version := strings.TrimSpace(string(b))
	var stateErr error
	if version == "1.4" {
		if stateErr = os.MkdirAll(stateDir, 0o755); stateErr == nil {
			stateErr = os.WriteFile(stateDir+"/drover-testsvc.state", []byte(version+"\n"), 0o644)
		}
	}
	http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
		if stateErr != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy %s: state: %v\n", version, stateErr)
			return
		}
		if version == "1.2" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unhealthy %s\n", version)
			return
		}
		fmt.Fprintf(w, "ok %s\n", version)
	})
	http.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, version) })
	if err := http.ListenAndServe("127.0.0.1:8080", nil); err != nil {
		fmt.Fprintln(os.Stderr, "drover-testsvc:", err)
		os.Exit(1)
	}
}

func holdLock(path, dur string) {
	d, err := time.ParseDuration(dur)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drover-testsvc:", err)
		os.Exit(2)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drover-testsvc:", err)
		os.Exit(1)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
		fmt.Fprintln(os.Stderr, "drover-testsvc: lock:", err)
		os.Exit(1)
	}
	fmt.Println("locked", path)
	time.Sleep(d)
}
