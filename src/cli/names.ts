/** Operator input echoed back in an error: quoted, control characters escaped, long input cut. */
export function shown(input: string, max = 64): string {
  const cut = input.length > max ? `${input.slice(0, max)}…` : input;
  const quoted = JSON.stringify(cut);
  return input.length > max ? `${quoted} (${input.length} characters)` : quoted;
}

/**
 * Pure: which part of a unit name is wrong (null when it is well formed), in the words an operator
 * needs: `postgres@vol-0abc12345def67890` is `<template>@<volume id>`.
 */
export function unitNameProblem(unit: string): string | null {
  const at = unit.indexOf('@');
  if (at < 0) return 'no "@": expected <template>@<volume id>, e.g. postgres@vol-0abc12345def67890';
  const template = unit.slice(0, at);
  const volume = unit.slice(at + 1);
  if (template === '') return 'the template before "@" is empty (e.g. postgres)';
  const badChar = /[^a-zA-Z0-9_.:-]/.exec(template);
  if (badChar) return `the template ${shown(template, 32)} has ${JSON.stringify(badChar[0])}; allowed: letters, digits, _ . : -`;
  if (!volume.startsWith('vol-')) return `the part after "@" must be an EBS volume id starting with "vol-", got ${shown(volume, 32)}`;
  const hex = volume.slice(4);
  if (!/^[0-9a-f]*$/.test(hex)) return `the volume id ${shown(volume, 32)} has characters other than 0-9 a-f after "vol-"`;
  if (hex.length < 8 || hex.length > 17) return `the volume id ${shown(volume, 32)} has ${hex.length} hex digits after "vol-"; expected 8 to 17 (EBS ids have 17)`;
  return null;
}

/** Levenshtein distance, for did-you-mean. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The known words closest to `input` (distance ≤ 2, or a prefix), best first. */
export function didYouMean(input: string, known: readonly string[]): string[] {
  const scored = known.map((k) => ({ k, d: k.startsWith(input) && input.length >= 2 ? 0.5 : editDistance(input, k) })).filter((x) => x.d <= Math.max(1, Math.min(2, Math.floor(input.length / 3))));
  return scored.sort((a, b) => a.d - b.d || a.k.localeCompare(b.k)).map((x) => x.k);
}
