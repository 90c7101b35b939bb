package agentcmd

import "os"

// replacedOnDisk returns a check of whether this program's file was
// replaced since the start (a package manager installs the new version
// under a new inode: dpkg and rpm rename it over the old one), or nil
// when the program's file cannot be found.
func replacedOnDisk() func() bool {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	start, err := os.Stat(exe)
	if err != nil {
		return nil
	}
	return func() bool {
		now, err := os.Stat(exe)
		return err == nil && !os.SameFile(start, now)
	}
}
