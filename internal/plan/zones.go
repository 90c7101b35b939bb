package plan

// tzdata is embedded so that windows' time zones load on every OS,
// including Windows and minimal containers without /usr/share/zoneinfo.
import _ "time/tzdata"

// timeZones lists common IANA zones, for "did you mean" suggestions only:
// any zone time.LoadLocation knows is accepted.
func timeZones() []string {
	return []string{
		"UTC", "Etc/UTC", "GMT",
		"Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin",
		"Europe/Amsterdam", "Europe/Brussels", "Europe/Luxembourg", "Europe/Madrid", "Europe/Rome",
		"Europe/Zurich", "Europe/Vienna", "Europe/Prague", "Europe/Warsaw", "Europe/Budapest",
		"Europe/Stockholm", "Europe/Oslo", "Europe/Copenhagen", "Europe/Helsinki", "Europe/Athens",
		"Europe/Bucharest", "Europe/Sofia", "Europe/Kyiv", "Europe/Istanbul", "Europe/Moscow",
		"America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
		"America/Los_Angeles", "America/Anchorage", "America/Toronto", "America/Vancouver",
		"America/Mexico_City", "America/Bogota", "America/Lima", "America/Santiago",
		"America/Sao_Paulo", "America/Argentina/Buenos_Aires", "America/Halifax",
		"Pacific/Honolulu", "Pacific/Auckland", "Australia/Sydney", "Australia/Melbourne",
		"Australia/Brisbane", "Australia/Perth", "Australia/Adelaide",
		"Asia/Tokyo", "Asia/Seoul", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei",
		"Asia/Singapore", "Asia/Kuala_Lumpur", "Asia/Jakarta", "Asia/Bangkok", "Asia/Manila",
		"Asia/Kolkata", "Asia/Karachi", "Asia/Dubai", "Asia/Riyadh", "Asia/Tehran",
		"Asia/Jerusalem", "Africa/Cairo", "Africa/Johannesburg", "Africa/Lagos", "Africa/Nairobi",
	}
}
