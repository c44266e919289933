//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// isolate puts the handler in its own process group, so that a Ctrl-C in
// the terminal reaches only the host, which then stops the handler itself
// (otherwise the handler's own exit could race the shutdown and be taken
// for a crash).
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminate asks the handler's process group to stop.
func terminate(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
}

// kill ends the handler's process group at once.
func kill(cmd *exec.Cmd) error {
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
