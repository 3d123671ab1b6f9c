// What each step of a sync answers. A failure carries a stable code (shown in
// the sync status), whether a baseline was refused (counted apart, logged as an
// error) and how long the server asked us to wait.

export type Fail = { ok: false; code: string; error: string; retryAfterMs?: number; refused?: boolean };
export type Step<T> = { ok: true; value: T } | Fail;
/** A step that may have put a new baseline in force. */
export type Changed = Step<{ changed: boolean }>;

/** What `syncNow()` and `fetchWantedNow()` answer. */
export type SyncOutcome = { ok: true; changed: boolean; version: number | null } | { ok: false; code: string; error: string };

export function fail(code: string, error: string, extra: Partial<Fail> = {}): Fail {
  return { ok: false, code, error, ...extra };
}

/** A baseline older than the version the server named when this host enrolled: a replay, refused. */
export function olderThanEnrolment(version: number, floor: number): Fail {
  return fail(
    'older',
    `refused: version ${version} is older than version ${floor}, which the server held when this host enrolled (a replayed baseline)`,
    {
      refused: true,
    },
  );
}
