;;; diffill.el --- Diffusion-model code infilling through eglot  -*- lexical-binding: t; -*-

;; Copyright (C) 2026 diffill contributors

;; Author: diffill contributors
;; URL: https://github.com/diffill/diffill
;; Version: 0.1.0
;; Package-Requires: ((emacs "27.1") (eglot "1.9"))
;; Keywords: tools, languages, convenience
;; SPDX-License-Identifier: Apache-2.0

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Code infilling with diffusion language models via `diffill serve' and eglot:
;;  - completion: eglot's `completion-at-point': the infill, and when asked
;;    for (invoked) its alternatives, best first, each annotated with how sure
;;    the model was (the item's detail, e.g. "diffill, 62% sure");
;;  - `diffill-fill' (C-c C-f in `diffill-mode'): workspace/executeCommand
;;    diffill.fillInTheMiddle at point, or over the active region; the model's
;;    drafts (`diffill/draft' notifications) are shown as a faded overlay until
;;    the server applies the edit;
;;  - `diffill/status' notifications go to `diffill-status' (for the mode line).
;;
;; Setup (after installing it, e.g. with Emacs 29's
;;   (package-vc-install '(diffill :url "https://github.com/diffill/diffill"
;;                                 :lisp-dir "editors/emacs"))
;; or `package-install-file' on this file, or `load-path'):
;;   (diffill-eglot-setup '(python-mode python-ts-mode))  ; registers the server
;;   (add-hook 'python-mode-hook #'eglot-ensure)
;;   (add-hook 'python-mode-hook #'diffill-mode)
;;
;; eglot runs one server per major mode: registering diffill for a mode
;; replaces another server (pyright, pylsp) there.
;;
;; Project settings: a repository's `.dir-locals.el' (or the
;; `eglot-workspace-configuration' eglot reads from it without asking) may
;; set only the harmless server settings in `diffill-project-safe-keys'.
;; The server starts from the global `diffill-server-command',
;; `process-environment' and `exec-path', in your home directory;
;; `:trustRemoteCode', `:logFile', `:backend', `:url', `:apiKeyEnv' and their
;; fill-command twins `:fillBackend', `:fillUrl', `:fillApiKeyEnv' (where your
;; code is sent) only ever come from the global value of `diffill-settings';
;; `:model', `:fillModel' and `:allowDownload' from a project only
;; when you accepted Emacs's prompt for its risky `diffill-settings'.  What
;; is dropped is reported once per project.

;;; Code:

(require 'eglot)
(require 'jsonrpc)
(require 'cl-lib)
(require 'project)
(eval-when-compile (require 'subr-x))

(defgroup diffill nil "Diffusion code infilling." :group 'tools :prefix "diffill-")

(defcustom diffill-server-command '("diffill" "serve")
  "Command line that starts the diffill language server (stdio)."
  :type '(repeat string))

(defcustom diffill-settings nil
  "Server settings: a plist with the camelCase keys of docs/PROTOCOL.md.
They are sent as initializationOptions, e.g. (:model \"/path/to/model\"
:device \"cpu\").  A directory-local value only adds to the global one, and
never sets `diffill-user-only-keys'."
  :type 'plist)

(defcustom diffill-fill-timeout 120
  "Seconds to wait for `diffill-fill'."
  :type 'integer)

(defclass diffill-server (eglot-lsp-server) ()
  :documentation "The diffill language server.")

;; What a repository may set (issue: a cloned repository must not run code or
;; redirect your code through editor settings).

(defconst diffill-project-safe-keys
  '(:device :dtype :threads :maxNewTokens :steps :contextTokens :debounceMs
    :adaptiveDebounce :multiline :drafts :languages :cacheSize :fallbackToCpu
    :fallbackToBundled :maxDocumentBytes :maxRequestsPerSecond)
  "Server settings a project may set without asking.
None of them chooses code to run, a file to write or where text goes.")

(defconst diffill-user-only-keys
  '(:trustRemoteCode :logFile :backend :url :apiKeyEnv :fillBackend :fillUrl :fillApiKeyEnv)
  "Server settings taken only from the global value of `diffill-settings'.
Never from a project, even one whose risky local variables you accepted.")

(defvar diffill-ignored-project-settings nil
  "Project settings diffill dropped: a list of (ROOT SOURCE KEYS).")

(defun diffill--plain-value-p (value)
  "Non-nil if VALUE is JSON data: atoms, vectors and plists of them."
  (cond ((or (stringp value) (numberp value) (booleanp value) (keywordp value)) t)
        ((vectorp value) (cl-every #'diffill--plain-value-p value))
        ((proper-list-p value) (cl-every #'diffill--plain-value-p value))))

(defun diffill--settings-plist-p (value)
  "Non-nil if VALUE is a plist with keyword keys."
  (and (proper-list-p value) (cl-evenp (length value))
       (cl-loop for key in value by #'cddr always (keywordp key))))

(defun diffill-safe-settings-p (value)
  "Non-nil if VALUE is a `diffill-settings' plist a project may set without asking."
  (and (diffill--settings-plist-p value)
       (cl-loop for (key val) on value by #'cddr
                always (and (memq key diffill-project-safe-keys) (diffill--plain-value-p val)))))

(put 'diffill-settings 'safe-local-variable #'diffill-safe-settings-p)
(put 'diffill-settings 'risky-local-variable t)   ; any other value: asked, never remembered
(put 'diffill-server-command 'risky-local-variable t)
(put 'diffill-fill-timeout 'safe-local-variable #'natnump)

(defun diffill--split-settings (settings keep-p)
  "Split plist SETTINGS into (KEPT . DROPPED-KEYS) by KEEP-P on each key."
  (let (kept dropped)
    (cl-loop for (key val) on settings by #'cddr
             do (if (funcall keep-p key) (setq kept (append kept (list key val)))
                  (push key dropped)))
    (cons kept (nreverse dropped))))

(defun diffill--report-ignored (source keys)
  "Tell once per project and SOURCE which project setting KEYS were dropped."
  (when keys
    (let* ((root (if-let ((project (project-current))) (project-root project) default-directory))
           (entry (list root source keys)))
      (unless (member entry diffill-ignored-project-settings)
        (push entry diffill-ignored-project-settings)
        (display-warning
         'diffill
         (format "ignored project settings %s from %s in %s: a project may not choose model code, \
the log file, or (without your answer to Emacs's prompt) the model; set them in your init file"
                 (mapconcat #'symbol-name keys " ") source root))))))

(defun diffill--settings ()
  "Return the initializationOptions for the server.
That is the global `diffill-settings' overlaid by a directory-local value
without `diffill-user-only-keys'."
  (let ((settings (copy-sequence (default-value 'diffill-settings))))
    (when (and (local-variable-p 'diffill-settings) (diffill--settings-plist-p diffill-settings))
      (let ((split (diffill--split-settings
                    diffill-settings (lambda (key) (not (memq key diffill-user-only-keys))))))
        (diffill--report-ignored "diffill-settings" (cdr split))
        (cl-loop for (key val) on (car split) by #'cddr
                 do (setq settings (plist-put settings key val)))))
    settings))

(defun diffill--signal-configuration (send server)
  "Call SEND with SERVER, but give a diffill SERVER only the safe settings.
Around `eglot-signal-didChangeConfiguration': a diffill server gets only the
`diffill-project-safe-keys' of the `:diffill' section of
`eglot-workspace-configuration', which eglot takes from a project without
asking."
  (if (not (cl-typep server 'diffill-server))
      (funcall send server)
    (let* ((section (plist-get (eglot--workspace-configuration-plist server) :diffill))
           (split (diffill--split-settings
                   (and (diffill--settings-plist-p section) section)
                   (lambda (key) (memq key diffill-project-safe-keys)))))
      (diffill--report-ignored "eglot-workspace-configuration" (cdr split))
      (jsonrpc-notify server :workspace/didChangeConfiguration
                      (list :settings (list :diffill (or (car split) eglot--{})))))))

(advice-add 'eglot-signal-didChangeConfiguration :around #'diffill--signal-configuration)

(defface diffill-draft-face '((t :inherit shadow :slant italic))
  "Face of the model's drafts shown while it fills.")

(defvar diffill-status nil "Last `diffill/status' notification (plist).")
(defvar diffill-draft-hook nil
  "Functions called with the draft plist after a draft is displayed.")
(defvar diffill-fill-done-hook nil
  "Functions called with the command result (plist) when `diffill-fill' finishes.")
(defvar-local diffill--draft-overlay nil)

(cl-defmethod eglot-initialization-options ((_server diffill-server))
  "Send `diffill-settings' (see `diffill--settings') as initializationOptions."
  (or (diffill--settings) eglot--{}))

(defun diffill--start-server ()
  "Start the global `diffill-server-command' in the home directory.
eglot would start it in the project's root, where `python -m lsp_server'
imports the project's own modules first.  Directory-local values of the
command, `process-environment' and variable `exec-path' are never used:
they would let a project choose the program and its environment."
  (let ((default-directory (concat (or (file-remote-p default-directory) "") "~/"))
        (process-environment (default-value 'process-environment))
        (exec-path (default-value 'exec-path)))
    (make-process :name "EGLOT (diffill)"
                  :command (default-value 'diffill-server-command)
                  :connection-type 'pipe
                  :coding 'utf-8-emacs-unix
                  :noquery t
                  :stderr (get-buffer-create "*EGLOT (diffill) stderr*")
                  :file-handler t)))

;;;###autoload
(defun diffill-eglot-setup (&optional modes)
  "Register diffill with eglot for MODES (default: Python modes)."
  (let ((modes (or modes '(python-mode python-ts-mode))))
    (add-to-list 'eglot-server-programs
                 (cons modes (list 'diffill-server :process #'diffill--start-server)))))

;; eglot renamed some helpers over time (1.9 in Debian bookworm, newer in Emacs 29+)
(defun diffill--path-to-uri (path)
  "Return the file URI of PATH."
  (if (fboundp 'eglot-path-to-uri) (eglot-path-to-uri path) (eglot--path-to-uri path)))

(defun diffill--uri-to-path (uri)
  "Return the file name of URI."
  (if (fboundp 'eglot-uri-to-path) (eglot-uri-to-path uri) (eglot--uri-to-path uri)))

(defun diffill--mode-line ()
  "Return the mode line text: the server's state from `diffill-status'."
  (if diffill-status (format " diffill:%s" (plist-get diffill-status :state)) ""))

(cl-defmethod eglot-handle-notification
  (_server (_method (eql diffill/status)) &rest params &key state message &allow-other-keys)
  "Record a diffill/status notification: PARAMS, with STATE and MESSAGE."
  (setq diffill-status params)
  (when (equal state "error")
    (message "[diffill] error: %s" message))
  (force-mode-line-update t))

(defun diffill--buffer-for-uri (uri)
  "Return the buffer visiting the file of URI, or nil."
  (let ((path (diffill--uri-to-path uri)))
    (and path (find-buffer-visiting path))))

(defun diffill--clear-draft ()
  "Remove the draft overlay of the current buffer."
  (when (overlayp diffill--draft-overlay)
    (delete-overlay diffill--draft-overlay))
  (setq diffill--draft-overlay nil))

(cl-defmethod eglot-handle-notification
  (_server (_method (eql diffill/draft)) &rest draft
           &key uri version range text step steps &allow-other-keys)
  "Show a diffill/draft notification DRAFT as a faded overlay.
The overlay is in the buffer of URI, if that buffer is still at VERSION;
it covers RANGE (what the fill will replace) and shows TEXT with STEP of
STEPS."
  (let ((buf (diffill--buffer-for-uri uri)))
    (when (and buf (buffer-live-p buf))
      (with-current-buffer buf
        (when (or (null version) (equal version eglot--versioned-identifier))
          (diffill--clear-draft)
          (let* ((beg (eglot--lsp-position-to-point (plist-get range :start)))
                 (end (eglot--lsp-position-to-point (plist-get range :end)))
                 (ov (make-overlay beg end nil t nil)))
            (overlay-put ov 'diffill t)
            (when (< beg end) (overlay-put ov 'face '(:strike-through t)))
            (overlay-put ov 'before-string
                         (concat (propertize text 'face 'diffill-draft-face)
                                 (propertize (format " [%s/%s]" step steps) 'face 'shadow)))
            (setq diffill--draft-overlay ov))
          (run-hook-with-args 'diffill-draft-hook draft))))))

;;;###autoload
(defun diffill-fill (&optional beg end)
  "Fill in the middle at point, or replace the region BEG..END."
  (interactive (when (use-region-p) (list (region-beginning) (region-end))))
  (let* ((server (eglot--current-server-or-lose))
         (buf (current-buffer))
         (arg (append (list :uri (diffill--path-to-uri (buffer-file-name)))
                      (if (and beg end)
                          (list :range (list :start (eglot--pos-to-lsp-position beg)
                                             :end (eglot--pos-to-lsp-position end)))
                        (list :position (eglot--pos-to-lsp-position))))))
    (deactivate-mark)
    ;; send what was typed since the last sync first: the fill is made for the buffer as it is
    ;; now (eglot only flushes before its deferred requests; the server refuses a stale edit)
    (eglot--signal-textDocument/didChange)
    (jsonrpc-async-request
     server :workspace/executeCommand
     (list :command "diffill.fillInTheMiddle" :arguments (vector arg))
     :success-fn (lambda (result)
                   (with-current-buffer buf (diffill--clear-draft))
                   (if (eq (plist-get result :applied) t)
                       (message "[diffill] filled")
                     (message "[diffill] edit not applied: %s" (or (plist-get result :reason) "")))
                   (run-hook-with-args 'diffill-fill-done-hook result))
     :error-fn (lambda (err)
                 (with-current-buffer buf (diffill--clear-draft))
                 (message "[diffill] fill failed: %s" (plist-get err :message))
                 (run-hook-with-args 'diffill-fill-done-hook (list :error err)))
     :timeout diffill-fill-timeout)))

(defvar diffill-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-f") #'diffill-fill)
    map)
  "Keymap of `diffill-mode'.")

;;;###autoload
(define-minor-mode diffill-mode
  "Keys and mode line for diffill (the server itself runs through eglot)."
  :lighter (:eval (diffill--mode-line))
  :keymap diffill-mode-map)

(provide 'diffill)
;;; diffill.el ends here
