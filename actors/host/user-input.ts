import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type { MessageItem, UserInput } from '../../protocol/index.js';
import { TroupeError } from '../../protocol/index.js';

const IMAGE_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
};

export class UserInputError extends TroupeError {
  override readonly name = 'UserInputError';
  override readonly code = 'bad_request';
}

/** The user's input as the message the model is sent; images are inlined as data URLs. */
export async function userMessage(items: readonly UserInput[]): Promise<MessageItem> {
  const content: MessageItem['content'] = [];
  for (const item of items) {
    if (item.type === 'text') {
      content.push({ type: 'input_text', text: item.text });
      continue;
    }
    const mime = IMAGE_TYPES[extname(item.path).toLowerCase()];
    if (!mime) throw new UserInputError(`local_image ${item.path}: unsupported image type (use png, jpeg, gif or webp)`);
    let bytes: Buffer;
    try {
      bytes = await readFile(item.path);
    } catch (error) {
      throw new UserInputError(`local_image ${item.path}: ${(error as Error).message}`, { cause: error });
    }
    content.push({ type: 'input_image', image_url: `data:${mime};base64,${bytes.toString('base64')}` });
  }
  return { type: 'message', role: 'user', content };
}
