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
    for (const token of filter.split('.')) {
      if (token === '>') {
        node.rest.add(entry);
        this.#order.set(entry, this.#added++);
        return;
      }
      node = node.child(token);
    }
    node.here.add(entry);
    this.#order.set(entry, this.#added++);
  }

  /** Removes `entry` from under `filter`; returns whether it was there. */
  delete(filter: string, entry: T): boolean {
    const path: Array<[TreeNode<T>, string]> = [];
    let node: TreeNode<T> | undefined = this.#root;
    let removed = false;
    for (const token of filter.split('.')) {
      if (token === '>') {
        removed = node.rest.delete(entry);
        break;
      }
      path.push([node, token]);
      node = node.find(token);
      if (!node) return false;
    }
    if (!removed) removed = node.here.delete(entry);
    if (!removed) return false;
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

class TreeNode<T> {
  /** Entries whose filter ends at this node. */
  readonly here = new Set<T>();
  /** Entries whose filter ends with `>` right below this node: one or more further tokens. */
  readonly rest = new Set<T>();
  readonly literal = new Map<string, TreeNode<T>>();
  star: TreeNode<T> | undefined;

  find(token: string): TreeNode<T> | undefined {
    return token === '*' ? this.star : this.literal.get(token);
  }

  child(token: string): TreeNode<T> {
    let node = this.find(token);
    if (!node) {
      node = new TreeNode<T>();
      if (token === '*') this.star = node;
      else this.literal.set(token, node);
    }
    return node;
  }

  /** Drops the child at `token` if nothing hangs from it any more; returns whether it did. */
  prune(token: string): boolean {
    const node = this.find(token);
    if (!node?.isEmpty()) return false;
    if (token === '*') this.star = undefined;
    else this.literal.delete(token);
    return true;
  }

  isEmpty(): boolean {
    return this.here.size === 0 && this.rest.size === 0 && this.literal.size === 0 && this.star === undefined;
  }
}

function collect<T>(node: TreeNode<T>, tokens: readonly string[], index: number, found: T[]): void {
  if (index === tokens.length) {
    for (const entry of node.here) found.push(entry);
    return;
  }
  for (const entry of node.rest) found.push(entry);
  const literal = node.literal.get(tokens[index]!);
  if (literal) collect(literal, tokens, index + 1, found);
  if (node.star) collect(node.star, tokens, index + 1, found);
}
