/**
 * User and group names for `-m owner --uid-owner NAME / --gid-owner NAME`,
 * resolved from local files the way getpwnam/getgrnam read them with the
 * "files" NSS source (never NIS/LDAP: loading a firewall must not depend
 * on a directory service). Read once and cached; tests point
 * `setAccountFiles` at fixtures. Configuration time only.
 */
import { readFileSync } from "node:fs";

let files = { passwd: "/etc/passwd", group: "/etc/group" };
let users: Map<string, number> | null = null;
let groups: Map<string, number> | null = null;

/** Points the lookups at other files (tests) and drops the caches. */
export function setAccountFiles(f: Partial<typeof files>): void {
  files = { ...files, ...f };
  users = groups = null;
}

/** name:x:id:... lines: the third field by the first. */
function load(path: string): Map<string, number> {
  const m = new Map<string, number>();
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return m; // a missing file resolves nothing; the caller reports the name
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || f[0] === "" || f[0]!.startsWith("#") || !/^\d+$/.test(f[2]!)) continue;
    if (!m.has(f[0]!)) m.set(f[0]!, Number(f[2]));
  }
  return m;
}

/** The uid of a user name, or undefined. */
export function lookupUser(name: string): number | undefined {
  users ??= load(files.passwd);
  return users.get(name);
}

/** The gid of a group name, or undefined. */
export function lookupGroup(name: string): number | undefined {
  groups ??= load(files.group);
  return groups.get(name);
}
