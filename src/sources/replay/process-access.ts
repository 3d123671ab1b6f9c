// Which Sysmon Event 10 (ProcessAccess) sources are routine rather than a sign
// of injection (DETECTION.md section 5). Real hosts open processes with
// PROCESS_VM_WRITE or PROCESS_CREATE_THREAD all the time: csrss.exe opens every
// new process with full access, lsass.exe with 0x1478, a parent its child. A
// broker counts as routine only from its system folder, so a look-alike
// `C:\Users\x\csrss.exe` still counts.

/** `%VAR%` -> the folder it stands for, as a regular expression over a normalised (lower-case, `\`) path. */
const FOLDERS: Record<string, string> = {
  systemroot: '(?:[a-z]:\\\\windows|\\\\systemroot)',
  windir: '(?:[a-z]:\\\\windows|\\\\systemroot)',
  programdata: '[a-z]:\\\\programdata',
  programfiles: '[a-z]:\\\\program files',
  'programfiles(x86)': '[a-z]:\\\\program files \\(x86\\)',
};

/** A Windows path as compared: lower-case, `\` separators, NT prefixes (`\\?\`, `\??\`) dropped. */
export function normaliseWindowsPath(path: string): string {
  return path
    .trim()
    .toLowerCase()
    .replace(/\//g, '\\')
    .replace(/^\\\\\?\\|^\\\?\?\\/, '');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One pattern as a regular expression over a normalised path; a bare name matches the file name in any folder. */
function compile(pattern: string): RegExp {
  const p = normaliseWindowsPath(pattern);
  let re = '';
  for (const part of p.split(/(%[^%\\]+%|\*)/)) {
    if (part === '*') re += '[^\\\\]*';
    else if (part.startsWith('%') && part.endsWith('%') && part.length > 2) re += FOLDERS[part.slice(1, -1)] ?? escapeRegExp(part);
    else re += escapeRegExp(part);
  }
  return new RegExp(p.includes('\\') ? `^${re}$` : `(?:^|\\\\)${re}$`);
}

/** The compiled `detect.processAccessIgnore` list. */
export class RoutineAccess {
  private readonly patterns: RegExp[];
  private readonly verdicts = new Map<string, boolean>();

  constructor(patterns: readonly string[]) {
    this.patterns = patterns.filter((p) => p.trim() !== '').map(compile);
  }

  /** Whether an access from this image is routine (a source image of a few dozen names a host: kept per path). */
  isRoutineSource(sourceImage: string): boolean {
    let v = this.verdicts.get(sourceImage);
    if (v === undefined) {
      const p = normaliseWindowsPath(sourceImage);
      // `Platform\..\x.exe` would pass for `Platform\*\x.exe`: a path with . or .. components is never routine.
      v = !/(?:^|\\)\.{1,2}(?:\\|$)/.test(p) && this.patterns.some((re) => re.test(p));
      if (this.verdicts.size < 10_000) this.verdicts.set(sourceImage, v);
    }
    return v;
  }
}
