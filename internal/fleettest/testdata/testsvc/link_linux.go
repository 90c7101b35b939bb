package main

import _ "unsafe" // for the go: directive below

// The service is dynamically linked, as most services are: it needs
// libsmartcols.so.1 (util-linux's table library, in the minimal root
// file system of every Debian suite the fleet runs, and needed by
// nothing apt, dpkg or the containers' scripts run). The dynamic loader
// maps it before main; on a node where it is removed the running
// service keeps answering and the next start fails, which the linkage
// host check catches (TestDebianFleetHostChecks). The Go linker writes
// the DT_NEEDED entry itself: no C compiler is involved, and nothing of
// the library is called.
//
//go:cgo_import_dynamic _ _ "libsmartcols.so.1"
