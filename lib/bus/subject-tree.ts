/**
 * Subscription filters arranged by token, as a NATS server keeps them: finding who listens on
 * a subject walks one branch per token (plus the `*` and `>` branches met on the way) instead
 * of testing every filter, and adding or removing a filter touches only its own branch. The
 * cost of a message therefore does not grow with the number of sessions on the bus, nor with
 * how many subjects were ever seen.
 *
 * Filters are taken as valid (`assertSubscribeSubject`); entries come back in the order they
 * were added, whichever branches they hang from.
 */
export class SubjectTree<T> {
  readonly #root = new TreeNode<T>();
  readonly #order = new Map<T, number>();
  #added = 0;

  add(filter: string, entry: T): void {
    let node = this.#root;
    let end: 'here' | 'rest' = 'here';
    for (const token of filter.split('.')) {
      if (token === '>') {
        end = 'rest';
        break;
      }
      node = node.child(token);
    }
    (node[end] ??= new Set()).add(entry);
    this.#order.set(entry, this.#added++);
  }

  /** Removes `entry` from under `filter`; returns whether it was there. */
  delete(filter: string, entry: T): boolean {
    const path: Array<[TreeNode<T>, string]> = [];
    let node: TreeNode<T> | undefined = this.#root;
    let end: 'here' | 'rest' = 'here';
    for (const token of filter.split('.')) {
      if (token === '>') {
        end = 'rest';
        break;
      }
      path.push([node, token]);
      node = node.find(token);
      if (!node) return false;
    }
    const entries = node[end];
    if (!entries?.delete(entry)) return false;
    if (entries.size === 0) node[end] = undefined;
    this.#order.delete(entry);
    // Prune the branches left empty, from the leaf up.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, token] = path[i]!;
      if (!parent.prune(token)) break;
    }
    return true;
  }

  /** Every entry whose filter matches the concrete `subject`, in the order they were added. */
  match(subject: string): T[] {
    const found: T[] = [];
    collect(this.#root, subject.split('.'), 0, found);
    if (found.length > 1) found.sort((a, b) => this.#order.get(a)! - this.#order.get(b)!);
    return found;
  }
}

/** One token's branch. Its parts are made when first needed: most nodes are leaves of one subscription. */
class TreeNode<T> {
  /** Entries whose filter ends at this node. */
  here: Set<T> | undefined;
  /** Entries whose filter ends with `>` right below this node: one or more further tokens. */
  rest: Set<T> | undefined;
  literal: Map<string, TreeNode<T>> | undefined;
  star: TreeNode<T> | undefined;

  find(token: string): TreeNode<T> | undefined {
    return token === '*' ? this.star : this.literal?.get(token);
  }

  child(token: string): TreeNode<T> {
    let node = this.find(token);
    if (!node) {
      node = new TreeNode<T>();
      if (token === '*') this.star = node;
      else (this.literal ??= new Map()).set(token, node);
    }
    return node;
  }

  /** Drops the child at `token` if nothing hangs from it any more; returns whether it did. */
  prune(token: string): boolean {
    const node = this.find(token);
    if (!node?.isEmpty()) return false;
    if (token === '*') this.star = undefined;
    else {
      this.literal!.delete(token);
      if (this.literal!.size === 0) this.literal = undefined;
    }
    return true;
  }

  isEmpty(): boolean {
    return this.here === undefined && this.rest === undefined && this.literal === undefined && this.star === undefined;
  }
}

function collect<T>(node: TreeNode<T>, tokens: readonly string[], index: number, found: T[]): void {
  if (index === tokens.length) {
    if (node.here) for (const entry of node.here) found.push(entry);
    return;
  }
  if (node.rest) for (const entry of node.rest) found.push(entry);
  const literal = node.literal?.get(tokens[index]!);
  if (literal) collect(literal, tokens, index + 1, found);
  if (node.star) collect(node.star, tokens, index + 1, found);
}
