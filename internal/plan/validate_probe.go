package plan

// commandProbe checks a command probe: exactly one of command (a program
// the agent runs only if its own configuration allows command probes)
// and artifact (a signed artifact, verified as scripts are); args go
// with artifact only.
func (v *validator) commandProbe(pp string, pr *Probe) {
	_, hasCmd := v.d.pos[pp+".command"]
	_, hasArt := v.d.pos[pp+".artifact"]
	switch {
	case hasCmd && hasArt:
		v.keyErrf(pp+".artifact", "a command probe runs either command or a signed artifact, not both")
	case !hasCmd && !hasArt:
		v.errf(pp, "a command probe needs command (a list: [\"/usr/bin/check\", \"--quick\"], run only by agents started with --allow-command-probes) or artifact (a signed artifact)")
	case hasCmd:
		if v.written(pp+".command") && (len(pr.Command) == 0 || pr.Command[0] == "") {
			v.errf(pp+".command", "command must name a program")
		}
		if _, ok := v.d.pos[pp+".args"]; ok {
			v.keyErrf(pp+".args", "args go with artifact; put a command's arguments in its list")
		}
	case hasArt:
		v.nonEmpty(pp+".artifact", pr.Artifact, "artifact")
	}
}
