package auth

// Known vectors, made by tools independent of this package on the
// development machine (Debian 12) and pasted here. Passwords are "secret"
// and "pässwörd" (UTF-8).
//
//	OpenSSL 3.0.19:             openssl passwd -6|-5|-1 -salt saltsalt secret
//	libxcrypt via Python 3.11:  python3 -c 'import crypt; print(crypt.crypt("secret", SETTING))'
//	apache2-utils 2.4.71:       htpasswd -bnBC 10 alice secret
//	argon2 0~20171227 (the reference implementation's CLI):
//	                            printf secret | argon2 saltsaltsalt -id -t 3 -m 16 -p 1 -e
//	Python 3.11 hashlib:        sha*(password+salt).digest()+salt, base64 (or hex)
//	Dovecot 2.3.19.1:           doveadm pw -s SCHEME -p PASSWORD [-r ROUNDS]
type vector struct {
	source   string
	password string
	stored   string
}

// cheapArgon2id is "secret" in ARGON2ID at the lowest cost (8 KiB, one
// pass), from the argon2 CLI: for tests that need an ARGON2ID user but not
// its cost.
const cheapArgon2id = "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$WHwbVkQ5XzAMaltcqwxy+X9v0VxYTVTjS9BRTrowawM"

var knownVectors = []vector{
	// OpenSSL.
	{"openssl passwd -6 -salt saltsalt", "secret", "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"},
	{"openssl passwd -6 -salt saltsalt (as {SHA512-CRYPT})", "secret", "{SHA512-CRYPT}$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"},
	{"openssl passwd -5 -salt saltsalt", "secret", "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA"},
	{"openssl passwd -1 -salt saltsalt", "secret", "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"},
	{"openssl passwd -1 -salt saltsalt (as {MD5-CRYPT})", "secret", "{MD5-CRYPT}$1$saltsalt$9xy1btjgzLYfb7hivXtC//"},

	// libxcrypt through Python's crypt module.
	{"crypt.crypt $6$rounds=10000$saltsalt", "secret", "{CRYPT}$6$rounds=10000$saltsalt$WowrPBpEDVlCoruBosYlrZycTCx3//TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8aUe9p55hcAxeGcu58sm3u."},
	{"crypt.crypt $2b$04$", "secret", "$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"},

	// htpasswd (bcrypt).
	{"htpasswd -bnBC 10 alice secret", "secret", "$2y$10$IgZA.7/GKVEV5INh4bTBrujWPDM5j8RBB6xWCnnYD/z.3UYjk4RRW"},
	{"htpasswd -bnBC 10 bob pässwörd", "pässwörd", "{BLF-CRYPT}$2y$10$ppZG/PkBOct6I3wk8EptReRWPhHFFkXdlOGJ3I/i3KOJPOKbTAvii"},

	// argon2 reference CLI.
	{"argon2 saltsaltsalt -id -t 3 -m 16 -p 1 -e", "secret", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0$LcBKbTcQtxTjD10CS0pJKNMjiKPLwxdtPSUUFItPFIg"},
	{"argon2 saltsaltsalt -i -t 2 -m 12 -p 2 -e", "secret", "{ARGON2I}$argon2i$v=19$m=4096,t=2,p=2$c2FsdHNhbHRzYWx0$TGipz4JOA7wTYFuE58EBCfe3ELNqwNjLf7QaASk0/yI"},
	{"argon2 saltsaltsalt -id -t 1 -k 8 -p 1 -e", "secret", cheapArgon2id},
	{"argon2 saltsaltsalt -id -t 2 -k 64 -p 4 -e", "secret", "{ARGON2ID}$argon2id$v=19$m=64,t=2,p=4$c2FsdHNhbHRzYWx0$I4WZHUrIgRgSDThJ3POhbq9RBy9gpHsXFofLG3KaMEk"},
	{"argon2 saltsaltsalt -id -t 1 -m 10 -p 1 -l 16 -e", "pässwörd", "{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$GzZdT/BQ8+Tki2qGr19Omw"},

	// Python hashlib, salt "saltsalt".
	{"hashlib sha1 base64", "secret", "{SSHA}1G904nLkTkGWjKNnQuB/hpWXC/hzYWx0c2FsdA=="},
	{"hashlib sha1 hex", "secret", "{SSHA.HEX}d46f74e272e44e41968ca36742e07f8695970bf873616c7473616c74"},
	{"hashlib sha256 base64", "secret", "{SSHA256}oBmrdHcA6OZEkkCLeXh71YAerbvhXz1qqwjrPsXmEtNzYWx0c2FsdA=="},
	{"hashlib sha256 hex", "secret", "{SSHA256.HEX}a019ab747700e8e64492408b79787bd5801eadbbe15f3d6aab08eb3ec5e612d373616c7473616c74"},
	{"hashlib sha512 base64", "secret", "{SSHA512}aCu7JRc+kLsuEmFs1zTY+AiP7DSGnjjG+dH28Dp+E5usqoAixeTPihKqZmkWal4mUfp63tqvCAkFV1LKTDFH6XNhbHRzYWx0"},
	{"hashlib sha512 hex", "secret", "{SSHA512.HEX}682bbb25173e90bb2e12616cd734d8f8088fec34869e38c6f9d1f6f03a7e139bacaa8022c5e4cf8a12aa6669166a5e2651fa7adedaaf0809055752ca4c3147e973616c7473616c74"},
	{"hashlib md5 base64", "secret", "{SMD5}VAfQ6nCkaw9o3u+x706wnXNhbHRzYWx0"},
	// Python hashlib, salt bytes 1..8.
	{"hashlib sha512 base64 binary salt", "pässwörd", "{SSHA512}Yu/Ltpk5V2IioEJTkg5ODXh5ori1rGu6/wpL0bsEiRjgfnFW7Ts1qH8Dd5vmwCjj38ufG54re5ASJYl6lG2/0AECAwQFBgcI"},
	{"hashlib sha256 base64 binary salt", "pässwörd", "{SSHA256}wCL6Oz252l3pFvTjqB9HGliPQmYYhhSixyuO5gt/PoMBAgMEBQYHCA=="},
	{"hashlib sha1 base64 binary salt", "pässwörd", "{SSHA}tn7/adg0D1KxIrTpvz9Q6dFh6agBAgMEBQYHCA=="},
	{"hashlib sha256 hex, unsalted", "pässwörd", "{SHA256.HEX}46970bef70aced8123f0d5d094717e2a5cd412041e03b26376049fe65b2834a4"},

	// Dovecot, password "secret".
	{"doveadm pw -s ARGON2ID", "secret", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$rEcQ7hwcougU72fyjQNfsA$TCs3U+t+GbXaBMTIULuySkw5ybtPK4DqZXEfNUswg9I"},
	{"doveadm pw -s ARGON2I", "secret", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$OJOFJ1FiEDJ8rsFZZWwSZA$/EnDRyejNHzV++ApZFuvy+umrbXRRZpnHsryrHh2MQg"},
	{"doveadm pw -s BLF-CRYPT", "secret", "{BLF-CRYPT}$2y$05$vw2iYxWZ/u0u8JTQvTzKi.I2aKLTs4ImMzzbHWZ2n6IGVu11ekzt."},
	{"doveadm pw -s BLF-CRYPT -r 10", "secret", "{BLF-CRYPT}$2y$10$j.2GetzsVVmx.8IW3BBLlOu0/G81fDfSK4JFA3UjoY5G4x/jbTSLu"},
	{"doveadm pw -s CRYPT", "secret", "{CRYPT}$2y$05$VUxuJcJlMn0wnhry4B8Lfe2DI704aLHJwdMSzltZG3OIl7ktGRWcO"},
	{"doveadm pw -s SHA512-CRYPT", "secret", "{SHA512-CRYPT}$6$FnOIFOWjRyV1EMBr$5B7utSe9sICcvgHg48PIcmllR9.QJT66yE0Y/3nGavaLGBqpkB0MaWNnuPEy.1.jLlki.w8AG15Nqser6h8k/1"},
	{"doveadm pw -s SHA512-CRYPT -r 10000", "secret", "{SHA512-CRYPT}$6$rounds=10000$b12jHGpkI.MDorKA$M6dbOgX5wGpTyV0QarXuHi6xjCt2yywAUpIN7Gj/q4yeNtc.02d1eGkeW7AB9X.jFk8c.OyKwLQbGh2Pd4gVu0"},
	{"doveadm pw -s SHA256-CRYPT", "secret", "{SHA256-CRYPT}$5$DjlbuqNWQjEuMYG5$cOdDyTMpnH3yXA6JhmtEEQPoq1s1sZupTls9NXqN2S7"},
	{"doveadm pw -s MD5-CRYPT", "secret", "{MD5-CRYPT}$1$9sUYYP.f$nuLBZVyLUlPxFJDvRlgB5/"},
	{"doveadm pw -s SSHA512", "secret", "{SSHA512}1EWZcdA7fQSXCGEQZ+YMbYIT4XeCOtlCWUMhorxt9oywdOwh4HcF1yiyeA3WKPv5esVibLNfzk0/RWh5cbtnM/VHZOI="},
	{"doveadm pw -s SSHA512.HEX", "secret", "{SSHA512.HEX}8b16f27e69668cd970ef643a51e03e2bb8d4e97e0db83d54a2135fef1601e1e958907e7cba3a1dbd611b4eae5f555563ca05d515f20b1dc817b215c5b81edcc76b5e8f11"},
	{"doveadm pw -s SSHA256", "secret", "{SSHA256}TGGa+CTXh5gTQHWmMh5i0W/wmvdax3kUhwr7BpGWi3XvRWi4"},
	{"doveadm pw -s SSHA", "secret", "{SSHA}zJT7nOljHrjLoJw0K13Ubkq+1Xc+TLJI"},
	{"doveadm pw -s SMD5", "secret", "{SMD5}tytYtk02fVjKsyMGT9MKmjKvlas="},
	{"doveadm pw -s SHA512", "secret", "{SHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD2cmW192CF5bDufKRpayrW/isg=="},
	{"doveadm pw -s SHA256", "secret", "{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="},
	{"doveadm pw -s SHA256.HEX", "secret", "{SHA256.HEX}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"},
	{"doveadm pw -s SHA", "secret", "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="},
	{"doveadm pw -s PLAIN", "secret", "{PLAIN}secret"},
	{"doveadm pw -s CLEAR", "secret", "{CLEAR}secret"},
	{"doveadm pw -s PLAIN-MD5", "secret", "{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69"},
	{"doveadm pw -s PLAIN-MD5.B64", "secret", "{PLAIN-MD5.B64}Xr4ilOzQ4PCOq3aQ0qbuaQ=="},
	{"doveadm pw -s SCRAM-SHA-256", "secret", "{SCRAM-SHA-256}4096,qCq1t4n2BWb1JoMeEMdBbw==,rR44eKbc7XccLz9aCDOn3aCCFEDSYUG9bMCPpuf2kgw=,HoRSjqrM7QGJqfZYmB+FS1nNmChi1WSw6KzvgzZ8MBU="},
	{"doveadm pw -s SCRAM-SHA-1", "secret", "{SCRAM-SHA-1}4096,7mO0h+E/OZNU/7DG8W5s2Q==,/SWfQjaVCQ7vkaMGbY1otRYCg4o=,/xkcoNmxMKFsgqJggnJgrSUXiPk="},
	{"doveadm pw -s CRAM-MD5", "secret", "{CRAM-MD5}cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56"},
	{"doveadm pw -s PBKDF2 -r 1000", "secret", "{PBKDF2}$1$pW.jkGNHnWejIcp1$1000$d9f1288cea48296ee31a0870594c8ece0669ff7d"},
	// Dovecot accepts these (doveadm pw -t), so postie does: scheme names
	// in any case, hex for an unsalted digest without a suffix.
	{"doveadm pw -s SHA256, scheme in lower case", "secret", "{sha256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols="},
	{"sha256sum, hex without suffix", "secret", "{SHA256}2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"},
	{"sha256sum, upper-case hex without suffix", "secret", "{SHA256}2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B"},
	{"doveadm pw -s SSHA256, .BASE64 suffix", "secret", "{SSHA256.BASE64}TGGa+CTXh5gTQHWmMh5i0W/wmvdax3kUhwr7BpGWi3XvRWi4"},

	// Dovecot, password "pässwörd".
	{"doveadm pw -s ARGON2ID", "pässwörd", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$yKF8adhIb9f8JKWUSf6Shw$CV6pllkhWQyKX9K8rLSww/y1fMi5TFV/qNJDP7WwCaQ"},
	{"doveadm pw -s ARGON2I", "pässwörd", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$+KL+WNlMhYuP45hSUT070Q$yu9tgFgNETZBrwQhGA7zSm50qs01Pb5PFoNbRV/J3AY"},
	{"doveadm pw -s BLF-CRYPT", "pässwörd", "{BLF-CRYPT}$2y$05$8fE8jVfyBaX.JZvafE52h.5RXfnlL0CfsUNaVp7YUkZg/z5pyUoq."},
	{"doveadm pw -s SHA512-CRYPT", "pässwörd", "{SHA512-CRYPT}$6$qdQhpkpl5uljFaPV$w3CyNn8PZjPo.SUgULBf6NXOTTo21iscg5R.WGxm1RIoPdnbXeT2zYurNC7uxB6o8yfu5to4r4gDkHhkiMF8L1"},
	{"doveadm pw -s SHA256-CRYPT", "pässwörd", "{SHA256-CRYPT}$5$VZdcGCGRaflv5sXO$s3R2uXevZNZkMmtCNgGf9Ja79UZ8ronCFWHhtSjC.Q/"},
	{"doveadm pw -s MD5-CRYPT", "pässwörd", "{MD5-CRYPT}$1$H27uj1dA$RMxXSqV4H.kScUNEGTLW.0"},
	{"doveadm pw -s MD5", "pässwörd", "{MD5}$1$9dTi.g.e$uIgjBnsoWGZx.hGM23nsK."},
	{"doveadm pw -s SSHA512", "pässwörd", "{SSHA512}ANB+eXyWjhNntCDQmcYkXEbs4phsox8dFEZBUdtZnUuq+JBu/Bg0XhxLCkDOcWvDL3iLGrhRBMKjbFj2OHSezu67RPQ="},
	{"doveadm pw -s SSHA256", "pässwörd", "{SSHA256}35e2tdwqk3Di14P6wxh4mPY7cFdC8+CNRMHtrP8Fh0Qjm2C4"},
	{"doveadm pw -s SSHA", "pässwörd", "{SSHA}xaZJtMRuDstRRuZu45C8EcY9wMMBvNSu"},
	{"doveadm pw -s SMD5", "pässwörd", "{SMD5}JLVt6MKJqLc5Pybc+aWyOHu9EYI="},
	{"doveadm pw -s SHA512", "pässwörd", "{SHA512}csf+G9M7eFdGqclPm4DSWRzTjzwTyKpD91N/MqKoxfm10c7ha2nwIS4OOalNg/V7zzomuud2AHzrsB8NYxEnPg=="},
	{"doveadm pw -s SHA512.HEX", "pässwörd", "{SHA512.HEX}72c7fe1bd33b785746a9c94f9b80d2591cd38f3c13c8aa43f7537f32a2a8c5f9b5d1cee16b69f0212e0e39a94d83f57bcf3a26bae776007cebb01f0d6311273e"},
	{"doveadm pw -s SHA256", "pässwörd", "{SHA256}RpcL73Cs7YEj8NXQlHF+KlzUEgQeA7JjdgSf5lsoNKQ="},
	{"doveadm pw -s SHA1", "pässwörd", "{SHA1}9Rfd8dMqES/xrVXGbRsSyzjn6Pc="},
	{"doveadm pw -s PLAIN-MD5", "pässwörd", "{PLAIN-MD5}12841e4ba5e37d2fbfc78458c6714ade"},
	{"doveadm pw -s LDAP-MD5", "pässwörd", "{LDAP-MD5}EoQeS6XjfS+/x4RYxnFK3g=="},
	{"doveadm pw -s SCRAM-SHA-256", "pässwörd", "{SCRAM-SHA-256}4096,H11AZcjT63SsYHXUnwevvQ==,JfcpURDUw12O/wNQtK8bi5hiA0/a3ond4C1nTm1GGZY=,yhj5THDLTtUbnFCiSTBbjSPJlSMkO2IqM9J0S2uWqso="},
	{"doveadm pw -s SCRAM-SHA-1", "pässwörd", "{SCRAM-SHA-1}4096,QhX68ZnSN0uWW6uXj2umEQ==,TcjlxaExzWBXrN0XTSh2EQLYtP0=,W8pzDL+1o5arr52V2sy5gd7WMZQ="},
	{"doveadm pw -s CRAM-MD5", "pässwörd", "{CRAM-MD5}4a60bd37924fc5d45b4c92ce695bac86cb234bc3028aab2a71a225cb0dedfbb9"},
	{"doveadm pw -s PBKDF2", "pässwörd", "{PBKDF2}$1$NXvdUIG8XUCKoIX0$5000$c439097d5b6d2f6796d30b67b505d97d935d588c"},
}

// mismatchVectors are well-formed strings Dovecot (doveadm pw -t) rejects
// for the given password; so must postie.
var mismatchVectors = []vector{
	// A salted digest is base64 unless a suffix says otherwise: the hex
	// text decodes as base64 to the wrong bytes.
	{"hashlib sha1 hex without suffix", "secret", "{SSHA}d46f74e272e44e41968ca36742e07f8695970bf873616c7473616c74"},
	{"hashlib sha512 hex without suffix", "secret", "{SSHA512}682bbb25173e90bb2e12616cd734d8f8088fec34869e38c6f9d1f6f03a7e139bacaa8022c5e4cf8a12aa6669166a5e2651fa7adedaaf0809055752ca4c3147e973616c7473616c74"},
}
