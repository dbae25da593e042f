;;; diffill.el --- diffill language server through eglot  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: tools, languages, convenience

;;; Commentary:

;; Code infilling with diffusion language models via `diffill serve' and eglot:
;;  - completion: eglot's `completion-at-point' (the infill is one candidate);
;;  - `diffill-fill' (C-c C-f in `diffill-mode'): workspace/executeCommand
;;    diffill.fillInTheMiddle at point, or over the active region; the model's
;;    drafts (`diffill/draft' notifications) are shown as a faded overlay until
;;    the server applies the edit;
;;  - `diffill/status' notifications go to `diffill-status' (for the mode line).
;;
;; Setup:
;;   (add-to-list 'load-path "/path/to/diffill/editors/emacs")
;;   (require 'diffill)
;;   (diffill-eglot-setup '(python-mode python-ts-mode))  ; registers the server
;;   (add-hook 'python-mode-hook #'eglot-ensure)
;;
;; eglot runs one server per major mode: registering diffill for a mode
;; replaces another server (pyright, pylsp) there.

;;; Code:

(require 'eglot)
(require 'jsonrpc)
(require 'cl-lib)

(defgroup diffill nil "Diffusion code infilling." :group 'tools :prefix "diffill-")

(defcustom diffill-server-command '("diffill" "serve")
  "Command line that starts the diffill language server (stdio)."
  :type '(repeat string))

(defcustom diffill-settings nil
  "Server settings (plist, camelCase keys as in docs/PROTOCOL.md),
sent as initializationOptions, e.g. (:model \"/path/to/model\" :device \"cpu\")."
  :type 'plist)

(defcustom diffill-fill-timeout 120
  "Seconds to wait for `diffill-fill'."
  :type 'integer)

(defface diffill-draft-face '((t :inherit shadow :slant italic))
  "Face of the model's drafts shown while it fills.")

(defvar diffill-status nil "Last `diffill/status' notification (plist).")
(defvar diffill-draft-hook nil
  "Functions called with the draft plist after a draft is displayed.")
(defvar diffill-fill-done-hook nil
  "Functions called with the command result (plist) when `diffill-fill' finishes.")
(defvar-local diffill--draft-overlay nil)

(defclass diffill-server (eglot-lsp-server) ()
  :documentation "The diffill language server.")

(cl-defmethod eglot-initialization-options ((_server diffill-server))
  (or diffill-settings eglot--{}))

;;;###autoload
(defun diffill-eglot-setup (&optional modes)
  "Register diffill with eglot for MODES (default: Python modes)."
  (let ((modes (or modes '(python-mode python-ts-mode))))
    (add-to-list 'eglot-server-programs
                 (cons modes (cons 'diffill-server diffill-server-command)))))

;; eglot renamed some helpers over time (1.9 in Debian bookworm, newer in Emacs 29+)
(defun diffill--path-to-uri (path)
  (if (fboundp 'eglot-path-to-uri) (eglot-path-to-uri path) (eglot--path-to-uri path)))

(defun diffill--uri-to-path (uri)
  (if (fboundp 'eglot-uri-to-path) (eglot-uri-to-path uri) (eglot--uri-to-path uri)))

(defun diffill--mode-line ()
  (if diffill-status (format " diffill:%s" (plist-get diffill-status :state)) ""))

(cl-defmethod eglot-handle-notification
  (_server (_method (eql diffill/status)) &rest params &key state message &allow-other-keys)
  "Record diffill/status."
  (setq diffill-status params)
  (when (equal state "error")
    (message "[diffill] error: %s" message))
  (force-mode-line-update t))

(defun diffill--buffer-for-uri (uri)
  (let ((path (diffill--uri-to-path uri)))
    (and path (find-buffer-visiting path))))

(defun diffill--clear-draft ()
  (when (overlayp diffill--draft-overlay)
    (delete-overlay diffill--draft-overlay))
  (setq diffill--draft-overlay nil))

(cl-defmethod eglot-handle-notification
  (_server (_method (eql diffill/draft)) &rest draft
           &key uri version range text step steps &allow-other-keys)
  "Show a diffill/draft as a faded overlay at the range it will replace."
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
    map))

;;;###autoload
(define-minor-mode diffill-mode
  "Keys and mode line for diffill (the server itself runs through eglot)."
  :lighter (:eval (diffill--mode-line))
  :keymap diffill-mode-map)

(provide 'diffill)
;;; diffill.el ends here
