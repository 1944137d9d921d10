"""Where the code comes from on a Beaker node: the git remote and commit of the checkout the
launch happens from. The node clones that commit, so it must be committed (a dirty tree is
refused unless launch.beaker.allow_dirty) and pushed (which we cannot check offline: we say so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from engine.config import ConfigError

from ..run_files import REPO_ROOT, git

_SCP_LIKE = re.compile(r"^(?P<user>[^@/]+)@(?P<host>[^:/]+):(?P<path>.+)$")


@dataclass(frozen=True)
class GitState:
    remote: str  # clone URL usable from a node (https for GitHub-style scp remotes)
    commit: str  # full hash
    dirty: bool  # tracked files differ from the commit
    branch: Optional[str] = None

    def to_json(self) -> dict:
        return {"remote": self.remote, "commit": self.commit, "dirty": self.dirty, "branch": self.branch}


def cloneable_url(remote: str) -> str:
    """`git@github.com:org/repo.git` -> `https://github.com/org/repo.git`: nodes have no SSH key
    of yours. Other URLs (https, file, paths) are kept as they are."""
    match = _SCP_LIKE.match(remote)
    if match and "://" not in remote:
        return f"https://{match.group('host')}/{match.group('path')}"
    if remote.startswith("ssh://git@"):
        return "https://" + remote[len("ssh://git@"):]
    return remote


def read_git_state(repo: Path = REPO_ROOT, ref: Optional[str] = None) -> GitState:
    """The state to clone on the node. ConfigError (exit 2) when there is no usable checkout."""
    field = "launch.beaker.code_in_image"
    if git(repo, "rev-parse", "--git-dir") is None:
        raise ConfigError.one(field, f"{repo} is not a git checkout: launch from one, or set "
                              "launch.beaker.code_in_image=true with an image that holds the code")
    commit = git(repo, "rev-parse", "--verify", f"{ref or 'HEAD'}^{{commit}}")
    if commit is None:
        where = "launch.beaker.git_ref" if ref else field
        raise ConfigError.one(where, f"git cannot find commit {ref or 'HEAD'!r} in {repo}")
    remote = git(repo, "remote", "get-url", "origin")
    if not remote:
        remotes: List[str] = (git(repo, "remote") or "").split()
        remote = git(repo, "remote", "get-url", remotes[0]) if remotes else None
    if not remote:
        raise ConfigError.one(field, f"{repo} has no git remote to clone from on the node: add one "
                              "(git remote add origin URL) or set launch.beaker.code_in_image=true")
    dirty = bool(git(repo, "status", "--porcelain", "--untracked-files=no"))
    branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    return GitState(cloneable_url(remote), commit, dirty, None if branch == "HEAD" else branch)


def require_clean(state: GitState, allow_dirty: bool) -> None:
    if state.dirty and not allow_dirty:
        raise ConfigError.one(
            "launch.beaker.allow_dirty",
            "the git tree has uncommitted changes, which the node's clone would not have: commit and "
            "push them, or pass --allow-dirty (launch.beaker.allow_dirty=true) to launch the last commit anyway",
        )
