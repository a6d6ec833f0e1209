import { indexedList, tagList } from '../protocol.js';
import { el } from '../xml.js';
import type { ActionHandler } from './types.js';

export const createTags: ActionHandler = (sim, params) => {
  const tags: Record<string, string> = {};
  for (const tag of tagList(params, 'Tag')) tags[tag.key] = tag.value ?? '';
  sim.createTags(indexedList(params, 'ResourceId'), tags);
  return [el('return', true)];
};

export const deleteTags: ActionHandler = (sim, params) => {
  sim.deleteTags(indexedList(params, 'ResourceId'), tagList(params, 'Tag'));
  return [el('return', true)];
};
