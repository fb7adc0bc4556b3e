// A model's URL as it may be shown (in errors, to clients): a password in it masked.
import { createMask } from '../secrets.js';

const urlMask = createMask();
export const showUrl = (url: string): string => urlMask(url);
