// Cheap checks of a baseline file before SQLite sees it: SQLite opens garbage
// lazily and only fails on the first page it touches, and a truncated file fails
// on whichever lookup reaches a missing page. Reading the 100-byte header gives a
// clear error at open instead.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const MAGIC = 'SQLite format 3\u0000';
const HEADER_BYTES = 100;

export type HeaderProblem = { code: 'missing-file' | 'unreadable' | 'not-sqlite' | 'truncated'; detail: string };

export function sqliteHeaderProblem(path: string): HeaderProblem | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return { code: 'missing-file', detail: 'file does not exist' };
    return { code: 'unreadable', detail: `cannot open file (${err.code ?? err.message})` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { code: 'unreadable', detail: 'not a regular file' };
    const size = st.size;
    if (size === 0) return { code: 'not-sqlite', detail: 'file is empty' };
    const header = Buffer.alloc(HEADER_BYTES);
    const n = readSync(fd, header, 0, HEADER_BYTES, 0);
    if (n < HEADER_BYTES || header.toString('latin1', 0, 16) !== MAGIC) {
      return { code: 'not-sqlite', detail: 'not a SQLite file (bad header)' };
    }
    const rawPageSize = header.readUInt16BE(16);
    const pageSize = rawPageSize === 1 ? 65_536 : rawPageSize;
    if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) {
      return { code: 'not-sqlite', detail: `corrupt SQLite header (page size ${rawPageSize})` };
    }
    if (size % pageSize !== 0) {
      return { code: 'truncated', detail: `size ${size} bytes is not a whole number of ${pageSize}-byte pages (truncated or damaged)` };
    }
    // The in-header page count is valid only when the change counter matches version-valid-for.
    const pageCount = header.readUInt32BE(28);
    if (pageCount > 0 && header.readUInt32BE(24) === header.readUInt32BE(92) && pageCount * pageSize > size) {
      return { code: 'truncated', detail: `file holds ${size / pageSize} of its ${pageCount} pages (truncated)` };
    }
    return null;
  } catch (e) {
    return { code: 'unreadable', detail: `cannot read file (${(e as Error).message})` };
  } finally {
    closeSync(fd);
  }
}
