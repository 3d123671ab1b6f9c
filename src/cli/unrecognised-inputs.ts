// The message of `score` and `baseline build` for inputs rarecon cannot read
// at all (exit 1). Apart from io.ts, which every command loads, since it needs the readers.
import { FORMATS_READ, UNRECOGNISED_LINES_TO_GIVE_UP, type FileStats } from '../sources/replay/log-reader.js';
import { formatCounts } from './io.js';

/**
 * Exit 1 of `score` and `baseline build`: the inputs of which no line is a
 * record of either format, what their lines were, the formats read, and what
 * became of the run (`outcome`).
 */
export function unrecognisedMessage(files: readonly FileStats[], outcome: string): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  const lines = files.map((f) => {
    const what: string[] = [];
    if (Object.keys(f.errors).length > 0) what.push(formatCounts(f.errors as Record<string, number>));
    if (Object.keys(f.skipped).length > 0) what.push(`skipped: ${formatCounts(f.skipped)}`);
    if (f.format === 'sysmon') what.push('no Sysmon event');
    const cut = f.abandoned === true ? `; not read past its first ${n(f.lines)} lines` : '';
    return `  ${f.file}: ${n(f.lines)} line${f.lines === 1 ? '' : 's'} (${what.join('; ')})${cut}`;
  });
  return (
    `no line of ${files.length === 1 ? 'this input' : 'these inputs'} is a record rarecon reads:\n${lines.join('\n')}\n` +
    `rarecon reads ${FORMATS_READ} (a file none of whose first ${n(UNRECOGNISED_LINES_TO_GIVE_UP)} lines is one is not read further); ${outcome}`
  );
}
