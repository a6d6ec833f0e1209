/**
 * Just enough XML for EC2 responses: elements, `<item>` lists, escaping. Values `undefined`/`null`
 * omit the element (EC2 leaves out unset members rather than emitting empty ones).
 */
export type XmlValue = string | number | boolean | Date | null | undefined | XmlNode[];
export interface XmlNode {
  name: string;
  value: XmlValue;
}

export const EC2_XMLNS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export function el(name: string, value: XmlValue): XmlNode {
  return { name, value };
}

/** `<name><item>…</item>…</name>`, EC2's list shape. */
export function list<T>(name: string, items: readonly T[], render: (item: T) => XmlNode[]): XmlNode {
  return el(name, items.map((item) => el('item', render(item))));
}

export function tagSet(tags: Record<string, string>): XmlNode {
  return list('tagSet', Object.entries(tags), ([key, value]) => [el('key', key), el('value', value)]);
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] ?? c);
}

export function render(node: XmlNode): string {
  const { name, value } = node;
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return `<${name}>${value.map(render).join('')}</${name}>`;
  const text = value instanceof Date ? value.toISOString() : String(value);
  return `<${name}>${escapeXml(text)}</${name}>`;
}

export function responseDocument(action: string, requestId: string, body: XmlNode[]): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${EC2_XMLNS}">` +
    `<requestId>${escapeXml(requestId)}</requestId>${body.map(render).join('')}</${action}Response>`
  );
}

export function errorDocument(code: string, message: string, requestId: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code>` +
    `<Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${escapeXml(requestId)}</RequestID></Response>`
  );
}
